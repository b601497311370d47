// A real OpenID provider (npm `oidc-provider`) minting JWT access tokens the
// way third-party authorization servers shape them, for the verifier's
// claim-mapping test. Usage: node token_server.js <config.json>, where the
// JSON holds { "port": 1234, "resource": "<RFC 8707 resource>",
//   "scope": "<scope claim>", "extra": { <claims added to every token> },
//   "clients": [<client metadata, client_credentials grant>] }.
// Tokens come from the client_credentials grant with `resource`. Listens on
// 127.0.0.1 only and prints "listening <url>" when ready.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${cfg.port}`;

const provider = new Provider(issuer, {
  clients: cfg.clients,
  scopes: cfg.scope.split(' '),
  cookies: { keys: ['mcpgate-e2e-token-server-key'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => cfg.resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        if (resource !== cfg.resource) throw new Error(`unknown resource ${resource}`);
        return {
          scope: cfg.scope,
          audience: resource,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  extraTokenClaims: () => cfg.extra || {},
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.listen(cfg.port, '127.0.0.1', () => console.log(`listening ${issuer}`));

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
