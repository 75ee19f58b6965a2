// The console in a real browser: Debian's Chromium driven by playwright-core, each console page
// screenshotted at 375 and 1440 px and checked with axe-core. Run by tests/it/console_browser.rs,
// which starts rolegate and an SMTP sink and answers this script's questions on stdin.
//
// Environment: ROLEGATE_BASE (http://127.0.0.1:PORT), OWNER_LOGIN_URL and VIEWER_LOGIN_URL
// (one-time login links), SSO_EMAIL (an address whose domain a connection to the loopback
// OpenID Provider claims; the provider signs in whoever it is hinted), ISSUER (that provider),
// ORG_ID, SCREENSHOTS (a directory), CHROMIUM (default
// /usr/bin/chromium).
//
// Protocol: to get an invitation link this script prints {"need":"invitation","email":…} on
// stdout and reads the URL as one line on stdin. At the end it prints {"done":true,…}. Any
// failure: the reason on stderr, exit 1.

import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const BASE = env("ROLEGATE_BASE");
const ORG = env("ORG_ID");
const SHOTS = env("SCREENSHOTS");
mkdirSync(SHOTS, { recursive: true });

const WIDTHS = [375, 1440];
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const log = (...args) => console.error("[console.mjs]", ...args);
const say = (message) => process.stdout.write(JSON.stringify(message) + "\n");

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

async function ask(question) {
  say(question);
  const { value, done } = await lines.next();
  if (done) throw new Error(`no answer to ${JSON.stringify(question)}`);
  return value.trim();
}

const pages = [];
const cspViolations = [];

/// A context whose pages report any CSP violation (the policy is enforced: axe is evaluated
/// through the DevTools protocol, which the page's policy does not govern).
async function newContext(browser) {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  context.on("page", watch);
  return context;
}

function watch(page) {
  page.on("console", (message) => {
    if (/Content[- ]Security[- ]Policy/i.test(message.text())) {
      cspViolations.push(`${page.url()}: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => cspViolations.push(`${page.url()}: page error ${error}`));
}

/// Screenshots at both widths and the axe check at both; fails on serious or critical
/// violations, printing them.
async function audit(page, name) {
  for (const width of WIDTHS) {
    await page.setViewportSize({ width, height: width < 600 ? 812 : 900 });
    await page.screenshot({ path: `${SHOTS}/${name}-${width}.png`, fullPage: true });
    const hasAxe = await page.evaluate("typeof window.axe !== 'undefined'");
    if (!hasAxe) await page.evaluate(AXE_SOURCE);
    const result = await page.evaluate(async () => {
      // eslint-disable-next-line no-undef
      const r = await axe.run(document, { resultTypes: ["violations"] });
      return r.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
      }));
    });
    const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
    for (const v of result) log(`axe ${name}@${width}: ${v.impact} ${v.id}: ${v.help} at ${v.nodes.join(", ")}`);
    check(bad.length === 0, `${name} at ${width}px has serious accessibility violations: ${JSON.stringify(bad, null, 1)}`);
    // Nothing wider than the viewport, except inside a table's own scroll box.
    const overflow = await page.evaluate(() => {
      const width = document.documentElement.clientWidth;
      return [...document.querySelectorAll("body *")]
        .filter((el) => !el.closest(".table-wrap"))
        .filter((el) => el.getBoundingClientRect().right > width + 1)
        .slice(0, 3)
        .map((el) => el.tagName + (el.id ? "#" + el.id : "") + "." + el.className);
    });
    check(overflow.length === 0, `${name} at ${width}px overflows the viewport: ${overflow}`);
  }
  await page.setViewportSize({ width: 1440, height: 900 });
  pages.push(name);
}

/// Follows a one-time login link: its confirm page, then the button that signs in.
async function signInWithLink(page, url, auditAs) {
  await page.goto(url);
  if (auditAs) await audit(page, auditAs);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(`${BASE}/console/`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  // Signed out: the console sends to its sign-in page.
  const anonymous = await newContext(browser);
  const visitor = await anonymous.newPage();
  await visitor.goto(`${BASE}/console/orgs/${ORG}/members`);
  check(visitor.url().startsWith(`${BASE}/console/sign-in?return_to=`), `signed out lands on sign-in, not ${visitor.url()}`);
  await audit(visitor, "sign-in");
  await anonymous.close();

  // The Owner, through a login link.
  const owner = await newContext(browser);
  const page = await owner.newPage();
  await signInWithLink(page, env("OWNER_LOGIN_URL"), "sign-in-link");
  check(await page.getByRole("heading", { name: "Organizations" }).isVisible(), "the org tree");
  await audit(page, "home");
  await page.getByRole("link", { name: "Acme", exact: true }).click();
  await page.waitForURL(`${BASE}/console/orgs/${ORG}`);
  await audit(page, "org");

  await page.getByRole("link", { name: "Members", exact: true }).click();
  await page.waitForURL(`${BASE}/console/orgs/${ORG}/members`);
  await audit(page, "members");

  // The live filter (console.js) hides rows as one types; the server search works without it.
  await page.fill("#q", "no-such-person");
  check(await page.locator("#members tbody tr:visible").count() === 0, "the live filter hides every row");
  await page.fill("#q", "");

  // Invite two addresses with a permission group.
  await page.fill("#emails", "ada@acme.test, bob@acme.test");
  const developer = await page.locator("#access option", { hasText: "Developer" }).first().getAttribute("value");
  check(developer, "a Developer choice in the access select");
  await page.selectOption("#access", developer);
  await page.getByRole("button", { name: "Send invitation e-mail" }).click();
  await page.waitForSelector("#results");
  const results = await page.locator(".results li").allTextContents();
  log("invite results", results);
  check(results.length === 2, `two results, got ${results}`);
  for (const email of ["ada@acme.test", "bob@acme.test"]) {
    check(results.some((r) => r.startsWith(`${email}: invited`) && r.includes("the e-mail was sent")), `${email} invited and mailed: ${results}`);
  }
  check(await page.getByRole("status").textContent().then((t) => t.includes("2 of 2 addresses invited")), "the flash says so");
  await audit(page, "members-invited");

  // Ada opens her invitation in a browser of her own, accepts, and is signed in.
  const link = await ask({ need: "invitation", email: "ada@acme.test" });
  check(link.startsWith(`${BASE}/console/invitations/accept?token=`), `the e-mail's link opens the console: ${link}`);
  const invitee = await newContext(browser);
  const ada = await invitee.newPage();
  await ada.goto(link);
  check(await ada.getByRole("heading", { name: "You are invited to Acme" }).isVisible(), "the invitation page");
  check((await ada.textContent("main")).includes("Developer"), "it names the permission group");
  await audit(ada, "invitation");
  await ada.getByRole("button", { name: "Accept invitation" }).click();
  await ada.waitForURL(`${BASE}/console/`);
  check((await ada.textContent("header")).includes("ada@acme.test"), "ada is signed in");
  await invitee.close();

  // Products: a new product, a permission group on it whose Production access is read-only,
  // the explanation of a member's permissions, and the change in the audit log.
  await page.goto(`${BASE}/console/orgs/${ORG}/products`);
  await audit(page, "products");
  await page.fill("#product-name", "Web");
  await page.getByRole("button", { name: "Create product" }).click();
  await page.waitForURL(/\/console\/products\/[0-9a-f-]+$/);
  const productUrl = page.url();
  check((await page.textContent("h1")).includes("Web"), "the new product's page");
  await audit(page, "product");
  await page.fill("#group-name", "QA");
  await page.getByRole("button", { name: "Create group" }).click();
  await page.waitForURL(/\/console\/permission-groups\//);
  const production = page.getByRole("radio", { name: "Production (restricted): Read-only" });
  await production.check();
  await page.getByRole("button", { name: "Save group" }).click();
  await page.waitForLoadState("load");
  check((await page.getByRole("status").textContent()).includes("Saved QA"), "the group is saved");
  await page.reload();
  check(await page.getByRole("radio", { name: "Production (restricted): Read-only" }).isChecked(), "Production stays read-only");
  await audit(page, "permission-group");
  await page.goto(`${BASE}/console/orgs/${ORG}/members`);
  await page.getByRole("link", { name: "Explain permissions" }).first().click();
  await page.waitForURL(/\/explain/);
  const productId = productUrl.split("/").pop();
  await page.goto(`${page.url().split("?")[0]}?product=${productId}`);
  check((await page.textContent("main")).includes("Capabilities on"), "the explanation of a product");
  await audit(page, "explain");
  await page.goto(`${BASE}/console/orgs/${ORG}/audit?action=permission_group.update`);
  check((await page.textContent("main")).includes("permission_group.update"), "the group change is in the audit log");
  await audit(page, "audit");

  // A Viewer sees the members but no invite form, and a forged POST is refused.
  const viewerContext = await newContext(browser);
  const viewer = await viewerContext.newPage();
  await signInWithLink(viewer, env("VIEWER_LOGIN_URL"));
  await viewer.goto(`${BASE}/console/orgs/${ORG}/members`);
  check((await viewer.textContent("main")).includes("owner@acme.test"), "the viewer sees the members");
  check(await viewer.locator("#emails").count() === 0, "no invite form for a viewer");
  check(await viewer.getByRole("button", { name: "Send invitation e-mail" }).count() === 0, "no invite button");
  await audit(viewer, "members-viewer");
  const forged = await viewer.evaluate(async (org) => {
    const csrf = document.querySelector("input[name=csrf]").value;
    const response = await fetch(`/console/orgs/${org}/members/invite`, {
      method: "POST",
      body: new URLSearchParams({ csrf, emails: "eve@acme.test" }),
    });
    return response.status;
  }, ORG);
  check(forged === 403, `the viewer's forged invite is refused, got ${forged}`);
  await viewerContext.close();

  // Sam signs in by single sign-on: the sign-in page finds the org's provider by the e-mail's
  // domain, the provider signs Sam in and sends the browser back, and the console greets Sam.
  const ssoContext = await newContext(browser);
  const sam = await ssoContext.newPage();
  await sam.goto(`${BASE}/console/sign-in`);
  await sam.fill("#sso-email", env("SSO_EMAIL"));
  await sam.getByRole("button", { name: "Continue with single sign-on" }).click();
  await sam.waitForURL(`${BASE}/console/`).catch(async (error) => {
    throw new Error(`SSO stopped at ${sam.url()}: ${(await sam.textContent("body")).slice(0, 500)} (${error})`);
  });
  check((await sam.textContent("header")).includes(env("SSO_EMAIL")), "signed in through the provider");
  // Signing out ends the provider's session too (RP-initiated logout): the provider asks to
  // confirm, then sends the browser back to the console's sign-in page.
  await sam.getByRole("button", { name: "Sign out" }).click();
  await sam.waitForURL((url) => url.href.startsWith(env("ISSUER")));
  await sam.getByRole("button", { name: /yes/i }).click();
  await sam.waitForURL(/\/console\/sign-in/);
  check((await sam.getByRole("status").textContent()).includes("You are signed out."), "back from the provider, signed out");
  await ssoContext.close();

  // Map Sam's IdP group onto a product role: preview first (Sam gains), apply, and Sam's
  // explanation on the product shows the rule behind the role.
  await page.goto(`${BASE}/console/orgs/${ORG}/mappings`);
  await audit(page, "mappings");
  await page.fill("#rule-name", "eng");
  await page.fill("#rule-group", "Engineering");
  await page.selectOption("#rule-grant", { label: "role editor on product Web" });
  await page.getByRole("button", { name: "Preview" }).first().click();
  await page.waitForLoadState("load");
  check((await page.textContent("h1")).includes("preview of the mappings"), "the preview comes first");
  check((await page.textContent("main")).includes(env("SSO_EMAIL")), "the preview names who gains");
  await audit(page, "mappings-preview");
  await page.getByRole("button", { name: "Apply" }).click();
  await page.waitForURL(/\/mappings$/);
  check((await page.getByRole("status").textContent()).includes("Mappings applied"), "applied");
  await page.goto(`${BASE}/console/orgs/${ORG}/members?q=sam`);
  await page.getByRole("link", { name: "Module roles" }).first().click();
  await page.waitForURL(/\/modules$/);
  await audit(page, "module-roles");
  await page.goBack();
  await page.getByRole("link", { name: "Explain permissions" }).first().click();
  await page.waitForURL(/\/explain/);
  await page.goto(`${page.url().split("?")[0]}?product=${productId}`);
  check((await page.textContent("main")).includes("mapped by rule eng"), "the explanation names the rule");
  await audit(page, "explain-mapped");

  // A SCIM token: created (its secret shown once), then revoked.
  await page.goto(`${BASE}/console/orgs/${ORG}/tokens`);
  await page.fill("#token-name", "Okta");
  await page.getByRole("button", { name: "Create SCIM token" }).click();
  await page.waitForLoadState("load");
  check((await page.textContent("h1")).includes("SCIM token created"), "the new token's page");
  check((await page.textContent("#token-secret")).trim().length > 20, "its secret, shown once");
  await audit(page, "token-created");
  await page.goto(`${BASE}/console/orgs/${ORG}/tokens`);
  await audit(page, "tokens");
  await page.getByRole("link", { name: "Errors" }).first().click();
  await page.waitForURL(/\/errors$/);
  check((await page.textContent("h1")).includes("Provisioning errors"), "a token's error log");
  await audit(page, "token-errors");
  await page.goto(`${BASE}/console/orgs/${ORG}/tokens`);
  await page.getByRole("link", { name: "Revoke Okta" }).click();
  await page.getByRole("button", { name: "Revoke" }).click();
  await page.waitForLoadState("load");
  check((await page.getByRole("status").textContent()).includes("Revoked Okta"), "revoked");
  await page.goto(`${BASE}/console/orgs/${ORG}/connections`);
  await audit(page, "connections");

  // A product and an environment deleted: the environment at once, the product only once its
  // name is typed.
  await page.goto(`${BASE}/console/orgs/${ORG}/products`);
  await page.fill("#product-name", "Scratch");
  await page.getByRole("button", { name: "Create product" }).click();
  await page.waitForURL(/\/console\/products\/[0-9a-f-]+$/);
  await page.getByRole("button", { name: "Delete Development", exact: true }).click();
  await page.waitForLoadState("load");
  check((await page.getByRole("status").textContent()).includes("Deleted Development."), "the environment is deleted");
  check(!(await page.textContent("#environments")).includes("Development"), "and gone from the table");
  await page.fill("#confirm-delete", "Scratc");
  await page.getByRole("button", { name: "Delete product", exact: true }).click();
  await page.waitForLoadState("load");
  check((await page.textContent("main")).includes("type the product's name"), "a wrong name is refused");
  await page.fill("#confirm-delete", "Scratch");
  await page.getByRole("button", { name: "Delete product", exact: true }).click();
  await page.waitForURL(`${BASE}/console/orgs/${ORG}/products`);
  check((await page.getByRole("status").textContent()).includes("Deleted Scratch."), "the product is deleted");
  check((await page.getByRole("link", { name: "Scratch", exact: true }).count()) === 0, "and gone from the list");

  // Each change is in the audit log.
  for (const action of ["mapping.replace", "token.create", "token.revoke", "environment.delete", "product.delete"]) {
    await page.goto(`${BASE}/console/orgs/${ORG}/audit?action=${action}`);
    check((await page.textContent("main")).includes(action), `${action} is in the audit log`);
  }

  // The owner signs out.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/console\/sign-in/);
  check((await page.getByRole("status").textContent()).includes("You are signed out."), "the sign-in page says so");
  await page.goto(`${BASE}/console/`);
  check(page.url().includes("/console/sign-in"), "signed out");
  await owner.close();

  check(cspViolations.length === 0, `CSP violations or page errors: ${cspViolations.join("\n")}`);
  say({ done: true, pages });
} catch (error) {
  log(error.stack || String(error));
  process.exitCode = 1;
} finally {
  await browser.close();
  process.stdin.destroy();
}
