//! The request bodies, filters and PATCH paths that `scim_okta.rs` and `scim_entra.rs` send,
//! copied here as literals so the fuzz generators can start from what the two identity
//! providers really put on the wire and mutate it. The random parts of those tests (Okta's
//! `Runscope…` names, fresh UUIDs) are fixed to one value each; their shape is what matters.

use serde_json::Value;

const ALICE: &str = "0190f0f0-0000-7000-8000-0000000000a1";
const BOB: &str = "0190f0f0-0000-7000-8000-0000000000b2";

/// User bodies: Okta step 6 (create) and step 8 (recreate), Entra's tutorial user and the
/// shape of its `user_named` helper, the home-only user of the filtered-add quirk, and the
/// user with a title and an enterprise extension of the "empty string clears" quirk.
const USERS: &[&str] = &[
    r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"Runscope123Abcdefghi123@atko.com","name":{"givenName":"Runscope123","familyName":"Abcdefghi123"},"emails":[{"primary":true,"value":"Runscope123Abcdefghi123@atko.com","type":"work"}],"displayName":"Runscope123 Abcdefghi123","active":true}"#,
    r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"Runscope123Abcdefghi123@atko.com","name":{"givenName":"Runscope123","familyName":"Abcdefghi123"},"emails":[{"primary":true,"value":"Runscope123Abcdefghi123@atko.com","type":"work"}],"displayName":"Runscope123 Abcdefghi123","active":true,"password":"placeholder","groups":[]}"#,
    r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","userName":"Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee","active":true,"emails":[{"primary":true,"type":"work","value":"Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com"}],"meta":{"resourceType":"User"},"name":{"formatted":"givenName familyName","familyName":"familyName","givenName":"givenName"},"roles":[]}"#,
    r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"externalId":"0190f0f0-0000-7000-8000-00000000e0e0","userName":"ada@testuser.com","active":true,"emails":[{"primary":true,"type":"work","value":"Ada.Lovelace@Contoso.com"}],"name":{"familyName":"familyName","givenName":"givenName"}}"#,
    r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"externalId":"0190f0f0-0000-7000-8000-00000000e0e1","userName":"grace@testuser.com","active":true,"emails":[{"type":"work","value":"grace.work@contoso.com"},{"type":"home","value":"grace@contoso.com"}],"name":{"familyName":"familyName","givenName":"givenName"}}"#,
    r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"externalId":"0190f0f0-0000-7000-8000-00000000e0e2","userName":"home.only@testuser.com","active":true,"emails":[{"type":"home","value":"home@example.org"}],"name":{"familyName":"familyName","givenName":"givenName"}}"#,
    r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef","userName":"Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee","active":true,"emails":[{"primary":true,"type":"work","value":"Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com"}],"meta":{"resourceType":"User"},"name":{"formatted":"givenName familyName","familyName":"familyName","givenName":"givenName"},"roles":[],"title":"Engineer","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"R&D","employeeNumber":"42"}}"#,
];

/// Group bodies: Okta's group push (`members: []`) and the step-10 setup, Entra's tutorial
/// group with the Microsoft ADSCIM schema URN, and a group created with members.
const GROUPS: &[&str] = &[
    r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Runscope123","members":[]}"#,
    r#"{"displayName":"Runscope456"}"#,
    r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group","http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],"externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159","displayName":"displayName","meta":{"resourceType":"Group"}}"#,
    r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Engineering","members":[{"value":"0190f0f0-0000-7000-8000-0000000000a1","type":"User"},{"$ref":null,"value":"0190f0f0-0000-7000-8000-0000000000b2"}]}"#,
];

/// User PATCH requests Entra sends (tutorial "Update User", the compliance page's disable,
/// restore and multi-attribute replace, the filtered add, the clearing replace, the manager
/// add) and Okta's path-less deactivation.
const USER_PATCHES: &[&str] = &[
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"},{"op":"Replace","path":"name.familyName","value":"updatedFamilyName"}]}"#,
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"userName","value":"5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"}]}"#,
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}"#,
    r#"{"Operations":[{"op":"replace","path":"active","value":false}],"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}"#,
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"active","value":true}]}"#,
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"True"}]}"#,
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"emails[type eq \"work\"].value","value":"TestMhvaes@test.microsoft.com"},{"op":"replace","value":{"displayName":"Bjfe","name.givenName":"Kkom","name.familyName":"Unua","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber":"Aklq","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department":"Sales","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager":"0190f0f0-0000-7000-8000-0000000000b2"}}]}"#,
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"emails[type eq \"work\"].value","value":"work@example.org"}]}"#,
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"title","value":""},{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":""},{"op":"Replace","value":{"name.givenName":""}}]}"#,
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"manager","value":[{"$ref":null,"value":"0190f0f0-0000-7000-8000-0000000000b2"}]}]}"#,
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}"#,
];

/// Group PATCH requests: Entra's member add with `"$ref": null`, rename, value-list remove and
/// RFC filter remove; Okta's filter remove, `add` on `members`, `replace members []` and the
/// path-less replace echoing the id.
const GROUP_PATCHES: &[&str] = &[
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"members","value":[{"$ref":null,"value":"0190f0f0-0000-7000-8000-0000000000a1"}]}]}"#,
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"displayName","value":"1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}]}"#,
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Remove","path":"members","value":[{"$ref":null,"value":"0190f0f0-0000-7000-8000-0000000000a1"},{"$ref":null,"value":"0190f0f0-0000-7000-8000-0000000000b2"}]}]}"#,
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"0190f0f0-0000-7000-8000-0000000000a1\"]"}]}"#,
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"0190f0f0-0000-7000-8000-0000000000b2","display":"bob@example.com"}]}]}"#,
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"members","value":[]}]}"#,
    r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"id":"0190f0f0-0000-7000-8000-00000000aaaa","displayName":"Renamed by Okta"}}]}"#,
];

/// Filters: Okta's userName lookups (as written, and upper-cased), Entra's externalId probe,
/// work-address lookup (the non-RFC form), `and` with a boolean, and displayName lookup.
pub const FILTERS: &[&str] = &[
    r#"userName eq "Runscope123Abcdefghi123@atko.com""#,
    r#"userName eq "RUNSCOPE123ABCDEFGHI123@ATKO.COM""#,
    r#"userName eq "abcdefgh@atko.com""#,
    r#"externalId eq "0190f0f0-0000-7000-8000-00000000e0e0""#,
    r#"emails[type eq "work"].value eq "ada.lovelace@contoso.com""#,
    r#"userName eq "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee" and active eq true"#,
    r#"displayName eq "displayName""#,
    r#"userName eq "non-existent user""#,
];

/// PATCH paths from the requests above.
pub const PATHS: &[&str] = &[
    r#"emails[type eq "work"].value"#,
    "name.familyName",
    "userName",
    "active",
    "title",
    "manager",
    "members",
    "displayName",
    r#"members[value eq "0190f0f0-0000-7000-8000-0000000000a1"]"#,
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
];

/// Member ids the bodies name.
pub const MEMBER_IDS: &[&str] = &[ALICE, BOB];

fn parsed(texts: &[&str]) -> Vec<Value> {
    texts
        .iter()
        .map(|t| serde_json::from_str(t).expect("corpus bodies are JSON"))
        .collect()
}

pub fn users() -> Vec<Value> {
    parsed(USERS)
}

pub fn groups() -> Vec<Value> {
    parsed(GROUPS)
}

pub fn user_patches() -> Vec<Value> {
    parsed(USER_PATCHES)
}

pub fn group_patches() -> Vec<Value> {
    parsed(GROUP_PATCHES)
}

/// Every body, as text (for byte-level mutation).
pub fn all_texts() -> Vec<&'static str> {
    [USERS, GROUPS, USER_PATCHES, GROUP_PATCHES]
        .into_iter()
        .flatten()
        .copied()
        .collect()
}
