// A real OpenID provider (npm `oidc-provider`) for the issuer's upstream-login
// end-to-end test. Usage: node server.js <config.json>, where the JSON holds
// { "port": 1234, "clients": [<oidc-provider client metadata>],
//   "accounts": { "<login>": { "email": "...", "name": "..." } } }.
// Logins use the library's built-in development interactions (a login form
// with `login` + `password`, any password accepted, then a consent form);
// the account id (= `sub`) is the login. Listens on 127.0.0.1 only and prints
// "listening <url>" when ready.
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${cfg.port}`;
const accounts = cfg.accounts || {};

const provider = new Provider(issuer, {
  clients: cfg.clients,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  // Put the scope-requested claims in the ID token (the issuer reads them
  // from there, not from userinfo).
  conformIdTokenClaims: false,
  cookies: { keys: ['mcpgate-e2e-oidc-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const a = accounts[id];
    if (!a) return undefined;
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: a.email,
          email_verified: a.email_verified !== false,
          name: a.name,
          preferred_username: id,
        };
      },
    };
  },
});

provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.listen(cfg.port, '127.0.0.1', () => console.log(`listening ${issuer}`));

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
