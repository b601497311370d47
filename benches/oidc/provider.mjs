// node `oidc-provider` as the issuer benchmark's reference (benches/scale.py).
// Usage: node provider.mjs <config.json>; the JSON holds
//   { "port": 1234, "node_modules": "<dir holding oidc-provider>",
//     "client_id": "...", "redirect_uri": "...", "resource": "https://...",
//     "scope": "mcp:tools", "jwk": <private RSA JWK> }
// The same shape of service as the issuer under test: one pre-registered
// public client (PKCE), authorization_code + refresh_token with rotation on
// every use, RS256 JWT access tokens for one resource (RFC 8707), the
// library's default in-memory adapter. Login and consent are scripted: an
// /interaction/<uid> request logs in the account "bench" and grants the
// requested scope at once (no forms), so a code costs a few redirects.
// Listens on 127.0.0.1 only and prints "listening <url>" when ready.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const entry = pathToFileURL(join(cfg.node_modules, 'oidc-provider', 'lib', 'index.js')).href;
const { default: Provider } = await import(entry);
const issuer = `http://127.0.0.1:${cfg.port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: cfg.client_id,
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [cfg.redirect_uri],
  }],
  jwks: { keys: [cfg.jwk] },
  cookies: { keys: ['mcpgate-bench-cookie-key'] },
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => cfg.resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: cfg.scope,
        audience: cfg.resource,
        accessTokenTTL: 3600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 600,
    RefreshToken: 14 * 86400,
    Grant: 14 * 86400,
    Session: 86400,
    Interaction: 600,
  },
  // Refresh tokens for every client allowed the grant (no offline_access
  // dance), rotated on every use, as the issuer does.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => true,
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id }; } };
  },
});

provider.use(async (ctx, next) => {
  if (!/^\/interaction\/[^/]+$/.test(ctx.path)) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  let result;
  if (details.prompt.name === 'login') {
    result = { login: { accountId: 'bench' } };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    const missing = details.prompt.details || {};
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  }
  const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
  ctx.status = 303;
  ctx.redirect(to);
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.listen(cfg.port, '127.0.0.1', () => console.log(`listening ${issuer}`));

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
