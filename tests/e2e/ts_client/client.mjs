// The official MCP TypeScript SDK client (Client + StreamableHTTPClientTransport
// + an OAuthClientProvider), run by tests/e2e/test_ts_sdk.py against a real
// deployment. Everything OAuth is the SDK's own: 401 -> protected-resource
// metadata -> authorization-server metadata -> registration -> PKCE -> token,
// and refresh on a later 401.
//
// The user is the test: it talks to this process in JSON lines.
//   stdout {"event":"authorize","url":...}   the SDK wants the user at /authorize
//   stdin  {"code":...,"state":...}          where the login redirected
//   stdout {"event":"called",...}            tools listed and called
//   stdin  {"action":"call"}                 call whoami again (the test may
//                                            have revoked the token meanwhile)
//   stdin  {"action":"exit"}
// Usage: node client.mjs <mcp url> <redirect uri> [client id metadata document url]
// With the third argument the SDK uses that https URL as its client_id
// (Client ID Metadata Document) instead of registering.

import { createInterface } from "node:readline";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const [mcpUrl, redirectUri, clientMetadataUrl] = process.argv.slice(2);
if (!mcpUrl || !redirectUri) {
  console.error("usage: node client.mjs <mcp url> <redirect uri>");
  process.exit(64);
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function ask() {
  const { value, done } = await lines.next();
  if (done) throw new Error("the test closed stdin");
  return JSON.parse(value);
}
function say(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

// What the SDK is told and keeps, in memory; counts what it did.
const seen = { authorizations: 0, tokenSets: 0, registrations: 0, invalidated: [] };
let pendingCode = null;

const provider = {
  client: undefined,
  tokenSet: undefined,
  verifier: undefined,
  clientMetadataUrl,
  get redirectUrl() {
    return redirectUri;
  },
  get clientMetadata() {
    return {
      client_name: "mcpgate e2e (typescript sdk)",
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  },
  clientInformation() {
    return this.client;
  },
  saveClientInformation(info) {
    seen.registrations += 1;
    this.client = info;
  },
  tokens() {
    return this.tokenSet;
  },
  saveTokens(tokens) {
    seen.tokenSets += 1;
    this.tokenSet = tokens;
  },
  async redirectToAuthorization(url) {
    seen.authorizations += 1;
    say({ event: "authorize", url: url.toString() });
    pendingCode = await ask();
  },
  saveCodeVerifier(v) {
    this.verifier = v;
  },
  codeVerifier() {
    if (!this.verifier) throw new Error("no code verifier saved");
    return this.verifier;
  },
  invalidateCredentials(scope) {
    seen.invalidated.push(scope);
    if (scope === "all" || scope === "client") this.client = undefined;
    if (scope === "all" || scope === "tokens") this.tokenSet = undefined;
    if (scope === "all" || scope === "verifier") this.verifier = undefined;
  },
};

async function connect() {
  for (let attempt = 0; attempt < 3; attempt++) {
    const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
    const client = new Client({ name: "mcpgate-e2e-ts", version: "0.0.0" });
    try {
      await client.connect(transport);
      return client;
    } catch (e) {
      if (!(e instanceof UnauthorizedError) || !pendingCode) throw e;
      const { code } = pendingCode;
      pendingCode = null;
      await transport.finishAuth(code);
    }
  }
  throw new Error("still unauthorized after three authorizations");
}

function structured(result) {
  if (result.structuredContent) return result.structuredContent.result ?? result.structuredContent;
  return JSON.parse(result.content.map((c) => c.text ?? "").join(""));
}

try {
  const client = await connect();
  const tools = (await client.listTools()).tools.map((t) => t.name).sort();
  const sum = structured(await client.callTool({ name: "add", arguments: { a: 2, b: 3 } }));
  const who = structured(await client.callTool({ name: "whoami", arguments: {} }));
  say({ event: "called", tools, sum, who, access_token: provider.tokenSet?.access_token, seen });
  for (;;) {
    const cmd = await ask();
    if (cmd.action === "exit") break;
    const again = structured(await client.callTool({ name: "whoami", arguments: {} }));
    say({ event: "called-again", who: again, access_token: provider.tokenSet?.access_token, seen });
  }
  await client.close();
  process.exit(0);
} catch (e) {
  say({ event: "error", error: String(e?.stack ?? e), seen });
  process.exit(1);
}
