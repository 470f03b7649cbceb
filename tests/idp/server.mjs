// Test-only OpenID Connect provider for toolgate's auth tests: panva's oidc-provider with
// client credentials, resource indicators (RFC 8707), JWT access tokens and an RFC 8693
// token-exchange grant, on 127.0.0.1 with an ephemeral port. Prints `listening <port>` on
// stdout once ready. NEVER use this outside tests: the /admin endpoints sign anything.
//
// Test-only admin endpoints (not part of any standard):
//   GET  /admin/stats   {"token": <token endpoint requests>, "jwks": <JWKS requests>}
//   POST /admin/rotate  replace every signing key (new kids); the issuer stays the same
//   POST /admin/sign    {"claims": {...}, "alg": "RS256", "foreign": false, "kid": "..."}
//                       a JWS of the claims with the current key of `alg` (or, with
//                       `foreign`, a fresh key the JWKS does not list)
import http from 'node:http';
import { generateKeyPair, exportJWK, SignJWT, jwtVerify, createLocalJWKSet } from 'jose';
import Provider from 'oidc-provider';

const ALGS = ['RS256', 'ES256', 'EdDSA'];
// Resource servers: their identifier picks the access token signing algorithm.
const RESOURCE_ALG = {
  'https://gateway.test/mcp': 'RS256',
  'https://es.gateway.test/mcp': 'ES256',
  'https://ed.gateway.test/mcp': 'EdDSA',
};
const SCOPES = 'tools:read tools:write admin api:read api:write';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

let generation = 0;
async function makeKeys() {
  generation += 1;
  const keys = {};
  for (const alg of ALGS) {
    const { privateKey } = await generateKeyPair(alg, { extractable: true, crv: alg === 'EdDSA' ? 'Ed25519' : undefined });
    const jwk = await exportJWK(privateKey);
    keys[alg] = { ...jwk, alg, use: 'sig', kid: `${alg.toLowerCase()}-g${generation}` };
  }
  return keys;
}

const client = (id, extra = {}) => ({
  client_id: id,
  client_secret: `${id}-secret`,
  grant_types: ['client_credentials', TOKEN_EXCHANGE],
  response_types: [],
  redirect_uris: [],
  scope: SCOPES,
  ...extra,
});
const clients = [
  client('agent-1'),
  client('agent-2'),
  client('reader', { scope: 'tools:read' }),
  client('gateway-post', { token_endpoint_auth_method: 'client_secret_post' }),
  client('gateway-basic'),
];

let keys;
let provider;
let callback;
const stats = { token: 0, jwks: 0 };

async function build(issuer) {
  keys = await makeKeys();
  const p = new Provider(issuer, {
    clients,
    scopes: SCOPES.split(' '),
    jwks: { keys: Object.values(keys) },
    cookies: { keys: ['test-only-cookie-key'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => ({
          scope: SCOPES,
          audience: resource,
          accessTokenTTL: 3600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: RESOURCE_ALG[resource] ?? 'RS256' } },
        }),
      },
    },
    clientBasedCORS: () => true,
  });
  p.registerGrantType(TOKEN_EXCHANGE, tokenExchange(p), new Set(['subject_token', 'subject_token_type', 'resource', 'audience', 'scope']), ['resource', 'audience']);
  return p;
}

// RFC 8693: the subject token must be one of ours; the new token keeps its `sub`, is for the
// requested resource and names the acting client in `act`.
function tokenExchange(p) {
  return async (ctx) => {
    const { subject_token: subject, resource, audience, scope } = ctx.oidc.params;
    const fail = (description) => {
      ctx.status = 400;
      ctx.body = { error: 'invalid_grant', error_description: description };
    };
    if (!subject) return fail('subject_token is required');
    let claims;
    try {
      const jwks = createLocalJWKSet({ keys: Object.values(keys).map(publicJwk) });
      ({ payload: claims } = await jwtVerify(subject, jwks, { issuer: p.issuer }));
    } catch (e) {
      return fail(`subject_token is not valid: ${e.message}`);
    }
    const key = keys.RS256;
    const token = await new SignJWT({
      scope: scope ?? claims.scope,
      client_id: ctx.oidc.client.clientId,
      act: { sub: ctx.oidc.client.clientId },
    })
      .setProtectedHeader({ alg: 'RS256', kid: key.kid, typ: 'at+jwt' })
      .setIssuer(p.issuer)
      .setSubject(claims.sub)
      .setAudience(resource ?? audience ?? p.issuer)
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(await importPrivate(key));
    ctx.body = {
      access_token: token,
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      token_type: 'Bearer',
      expires_in: 3600,
    };
  };
}

function publicJwk(jwk) {
  const { d, p, q, dp, dq, qi, ...pub } = jwk;
  return pub;
}

async function importPrivate(jwk) {
  const { importJWK } = await import('jose');
  return importJWK(jwk, jwk.alg);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.on('data', (c) => { data += c; });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

function json(res, status, value) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(value));
}

async function admin(req, res, issuer) {
  const path = req.url.split('?')[0];
  if (path === '/admin/stats') return json(res, 200, stats);
  if (path === '/admin/rotate' && req.method === 'POST') {
    provider = await build(issuer);
    callback = provider.callback();
    return json(res, 200, { kids: Object.values(keys).map((k) => k.kid) });
  }
  if (path === '/admin/sign' && req.method === 'POST') {
    const { claims, alg = 'RS256', foreign = false, kid, header = {} } = JSON.parse(await readBody(req));
    let key = keys[alg];
    if (foreign) {
      const { privateKey } = await generateKeyPair(alg, { extractable: true, crv: alg === 'EdDSA' ? 'Ed25519' : undefined });
      key = { ...(await exportJWK(privateKey)), alg, kid: kid ?? 'forged' };
    }
    const token = await new SignJWT(claims)
      .setProtectedHeader({ typ: 'at+jwt', ...header, alg, kid: kid ?? key.kid })
      .sign(await importPrivate(key));
    res.writeHead(200, { 'content-type': 'text/plain' });
    return res.end(token);
  }
  return json(res, 404, { error: 'no such admin endpoint' });
}

const server = http.createServer((req, res) => {
  const path = req.url.split('?')[0];
  if (path.startsWith('/admin/')) {
    admin(req, res, provider.issuer).catch((e) => json(res, 500, { error: String(e) }));
    return;
  }
  if (path === '/token') stats.token += 1;
  if (path === '/jwks') stats.jwks += 1;
  callback(req, res);
});

server.listen(0, '127.0.0.1', async () => {
  const { port } = server.address();
  provider = await build(`http://127.0.0.1:${port}`);
  callback = provider.callback();
  process.stdout.write(`listening ${port}\n`);
});

// The test harness kills us; with IDP_EXIT_WITH_STDIN=1 we also stop when our parent goes
// away (its end of our stdin closes), so no provider outlives an aborted test run.
if (process.env.IDP_EXIT_WITH_STDIN === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
