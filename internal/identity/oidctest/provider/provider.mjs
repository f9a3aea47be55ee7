// A real OpenID provider (oidc-provider, OpenID-certified) for idvault's
// single sign-on tests. TEST USE ONLY: it signs in whoever asks.
//
// It listens on plain HTTP on 127.0.0.1 (a free port); the issuer is
// http://127.0.0.1:<port>, printed on stdout as one JSON line
// {"issuer": "..."} once it serves. Configuration comes as JSON in the
// environment variable OIDC_TEST_CONFIG:
//
//   {"clients": [{"client_id", "client_secret", "redirect_uris"}],
//    "accounts": {"<id>": {<claims>}}}
//
// Clients use the authorization code flow with PKCE (S256, required) and
// client_secret_basic. ID tokens carry the scope-granted claims
// (conformIdTokenClaims off): "openid" gives sub and amr (as the login
// stated it), "email" gives email and email_verified, "groups" gives groups
// and roles.
//
// The interaction is for a program, not a browser:
//   GET  /interaction/:uid          -> {"uid", "prompt"} (login or consent)
//   POST /interaction/:uid/login    form login=<account id>[&amr=a,b] -> 303 back to the provider
//   POST /interaction/:uid/consent  -> grants what was asked, 303 back
//   POST /interaction/:uid/abort    -> access_denied, 303 back
//   PUT  /test/accounts/:id         JSON claims: replaces an account's claims
//
// Misbehaving-provider accounts: an account whose claims hold
// "_tamper": "aud" | "iss" | "exp" | "sig" | "none" gets, from the real
// token endpoint, an ID token re-signed with that defect: another audience,
// another issuer, an expiry in the past, a signature by a key the provider
// does not publish, or no signature (alg none). This is how the tests prove
// the relying party checks each of them.
import { generateKeyPairSync, sign } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(process.env.OIDC_TEST_CONFIG || '{}');
const accounts = new Map(Object.entries(config.accounts || {}));

function rsaKey(kid) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey, jwk: { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } };
}

const signing = rsaKey('test-signing-key');
// The rogue key shares the published key's id but is not published.
const rogue = rsaKey('test-signing-key');

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

function resign(idToken, mode, issuer) {
  const [h, p] = idToken.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  const now = Math.floor(Date.now() / 1000);
  switch (mode) {
    case 'aud': claims.aud = 'another-client'; claims.azp = 'another-client'; break;
    case 'iss': claims.iss = `${issuer}/other`; break;
    case 'exp': claims.iat = now - 7200; claims.exp = now - 3600; break;
    case 'none': return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
    default: break;
  }
  const input = `${b64(header)}.${b64(claims)}`;
  const key = mode === 'sig' ? rogue.privateKey : signing.privateKey;
  return `${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`;
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString();
}

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: (config.clients || []).map((c) => ({
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      ...c,
    })),
    jwks: { keys: [signing.jwk] },
    cookies: { keys: ['idvault-test-only-cookie-key'] },
    claims: {
      openid: ['sub', 'amr'],
      email: ['email', 'email_verified'],
      groups: ['groups', 'roles'],
    },
    scopes: ['openid', 'email', 'groups'],
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, id) {
      if (!accounts.has(id)) return undefined;
      return {
        accountId: id,
        async claims() {
          const { _tamper: _, ...claims } = accounts.get(id) || {};
          return { ...claims, sub: id };
        },
      };
    },
  });

  provider.use(async (ctx, next) => {
    const m = ctx.path.match(/^\/interaction\/([^/]+)(?:\/(login|consent|abort))?$/);
    if (m) {
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      const action = m[2];
      if (!action && ctx.method === 'GET') {
        ctx.body = { uid: details.uid, prompt: details.prompt.name };
        return;
      }
      if (ctx.method !== 'POST') {
        ctx.status = 405;
        return;
      }
      let result;
      if (action === 'login') {
        const form = new URLSearchParams(await readBody(ctx.req));
        const login = form.get('login');
        if (!accounts.has(login)) {
          ctx.status = 400;
          ctx.body = { error: 'unknown account' };
          return;
        }
        const amr = (form.get('amr') || 'pwd').split(',').filter(Boolean);
        result = { login: { accountId: login, amr } };
      } else if (action === 'consent') {
        const { prompt: { details: missing }, params, session } = details;
        const grant = details.grantId
          ? await provider.Grant.find(details.grantId)
          : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
        if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
        if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
        result = { consent: { grantId: await grant.save() } };
      } else {
        result = { error: 'access_denied', error_description: 'the user refused' };
      }
      ctx.status = 303;
      ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false }));
      return;
    }
    const a = ctx.path.match(/^\/test\/accounts\/([^/]+)$/);
    if (a && ctx.method === 'PUT') {
      accounts.set(decodeURIComponent(a[1]), JSON.parse(await readBody(ctx.req)));
      ctx.status = 204;
      return;
    }
    await next();
    if (ctx.path === '/token' && ctx.status === 200 && ctx.body && ctx.body.id_token) {
      const sub = JSON.parse(Buffer.from(ctx.body.id_token.split('.')[1], 'base64url')).sub;
      const mode = (accounts.get(sub) || {})._tamper;
      if (mode) ctx.body = { ...ctx.body, id_token: resign(ctx.body.id_token, mode, issuer) };
    }
  });

  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
