// A real OpenID Provider (panva/oidc-provider, OpenID Certified) on loopback for rolegate's tests.
//
// Configured by the test through the environment variable OIDC_TEST_CONFIG (JSON):
//   { "port": 0,
//     "clients": [{ "client_id", "client_secret", "redirect_uris": [...],
//                   "token_endpoint_auth_method"?, "backchannel_logout_uri"? }],
//     "accounts": { "<sub, also the login_hint>": { "email", "email_verified", "name",
//                   "groups": [...], "amr": [...], "hasgroups": true } } }
// Prints one line `listening <issuer>` on stdout once it serves.
//
// The interaction is headless: `GET /auth?…&login_hint=<sub>` 303s to our interaction URL,
// which logs that account in and grants what was asked, then 303s back to the provider and on
// to the client's redirect URI — no HTML form in the way. A fresh RSA key is made at each start,
// so restarting the provider rotates its signing key (the client must refetch the JWKS).
//
// `POST /test/backchannel-logout?sub=…&sid=…` makes the provider send its signed logout_token to
// every client with a `backchannel_logout_uri` (what RP-initiated logout would do, without a
// browser's confirm form), and answers with the clients reached and the last form body sent.
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const config = JSON.parse(process.env.OIDC_TEST_CONFIG ?? '{}');
let lastSent;
const accounts = config.accounts ?? {};

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signing = { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' };

const server = http.createServer();
await new Promise((resolve) => server.listen(config.port ?? 0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: (config.clients ?? []).map((c) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...c,
  })),
  jwks: { keys: [signing] },
  // Groups in the ID token itself, as Okta and Entra put them there (oidc-provider otherwise
  // keeps scope claims for userinfo only when an access token is issued).
  conformIdTokenClaims: false,
  claims: {
    openid: ['sub', 'groups', 'hasgroups', 'amr', 'acr', 'auth_time'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  scopes: ['openid', 'email', 'profile'],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  // The back-channel logout request goes to a loopback client: oidc-provider's fetch passes an
  // undici dispatcher that refuses special-use addresses (127.0.0.1 among them), so it is left
  // out. The last body sent is kept, so a test can replay it.
  fetch: (url, { dispatcher, ...options }) => {
    lastSent = options.body?.toString();
    return fetch(url, options);
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const account = accounts[sub];
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        const claims = { sub, email: account.email, email_verified: account.email_verified ?? false };
        if (account.name) claims.name = account.name;
        if (account.groups) claims.groups = account.groups;
        if (account.hasgroups) claims.hasgroups = true;
        return claims;
      },
    };
  },
  ttl: { Session: 3600, Interaction: 600, Grant: 3600, AccessToken: 600, AuthorizationCode: 60, IdToken: 600 },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

const callback = provider.callback();

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const sub = details.params.login_hint;
  const account = accounts[sub];
  if (!account) {
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: `no test account ${sub}`,
    });
  }
  const grant = new provider.Grant({ accountId: sub, clientId: details.params.client_id });
  grant.addOIDCScope(String(details.params.scope ?? 'openid'));
  const grantId = await grant.save();
  return provider.interactionFinished(
    req,
    res,
    {
      login: { accountId: sub, amr: account.amr ?? ['pwd'], remember: false },
      consent: { grantId },
    },
    { mergeWithLastSubmission: false },
  );
}

async function backchannelLogout(req, res, url) {
  const sub = url.searchParams.get('sub');
  const sid = url.searchParams.get('sid') ?? undefined;
  const sent = [];
  for (const c of config.clients ?? []) {
    if (!c.backchannel_logout_uri) continue;
    const client = await provider.Client.find(c.client_id);
    await client.backchannelLogout(sub, sid);
    sent.push(c.client_id);
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ sent, body: lastSent }));
}

// A client's redirect URI names the connection rolegate made for it, known only once the
// connection exists (which needs this provider's discovery first): the test adds it here.
async function addRedirectUri(req, res, url) {
  const client = await provider.Client.find(url.searchParams.get('client_id'));
  client.redirectUris.push(url.searchParams.get('uri'));
  res.writeHead(204);
  res.end();
}

server.on('request', (req, res) => {
  const url = new URL(req.url, issuer);
  let handled;
  if (url.pathname === '/test/redirect-uri' && req.method === 'POST') {
    handled = addRedirectUri(req, res, url);
  } else if (url.pathname.startsWith('/interaction/')) {
    handled = interaction(req, res);
  } else if (url.pathname === '/test/backchannel-logout' && req.method === 'POST') {
    handled = backchannelLogout(req, res, url);
  } else {
    return callback(req, res);
  }
  handled.catch((err) => {
    console.error(err);
    res.writeHead(500);
    res.end(String(err));
  });
});

console.log(`listening ${issuer}`);
