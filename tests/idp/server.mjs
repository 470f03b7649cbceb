// Test-only OpenID Connect provider for toolgate's auth tests: panva's oidc-provider with
// client credentials, resource indicators (RFC 8707), JWT access tokens, an RFC 8693
// token-exchange grant, and the authorization code flow (PKCE S256 required, refresh tokens
// rotated on every use) with login and consent pages a scripted browser can drive, on
// 127.0.0.1 with an ephemeral port. Prints `listening <port>` on stdout once ready. NEVER
// use this outside tests: the /admin endpoints sign anything, and any login whose password is
// `<login>-password` signs in (the login becomes the `sub`).
//
// Interaction pages (HTML forms, no script):
//   GET  /interaction/<uid>          the login form (`login`, `password`) or the consent form
//   POST /interaction/<uid>/login    a wrong password shows the login form again (HTTP 200,
//                                    `<p class="error">`)
//   POST /interaction/<uid>/confirm  grants every requested scope, claim and resource
//   GET|POST /interaction/<uid>/abort  access_denied
//
// Test-only admin endpoints (not part of any standard):
//   GET  /admin/stats   {"token": <token endpoint requests>, "jwks": <JWKS requests>,
//                       "grants": {<grant_type>: <successful grants>},
//                       "grant_errors": {<grant_type>: <failed grants>},
//                       "refresh_failed": <failed refresh_token grants>,
//                       "logins": <successful sign-ins>, "login_failed": <wrong passwords>}
//   POST /admin/rotate  replace every signing key (new kids); the issuer stays the same
//   POST /admin/sign    {"claims": {...}, "alg": "RS256", "foreign": false, "kid": "..."}
//                       a JWS of the claims with the current key of `alg` (or, with
//                       `foreign`, a fresh key the JWKS does not list)
//   POST /admin/clients oidc-provider client metadata (client_id, client_secret,
//                       redirect_uris, grant_types, ...): registers or replaces that client;
//                       keys, issuer, sessions and grants stay. 400 with the provider's error
//                       when the metadata is invalid.
//   POST /admin/forget  forget every session, interaction, grant, code and token (keys and
//                       clients stay): the next refresh fails with invalid_grant
import http from 'node:http';
import { generateKeyPair, exportJWK, SignJWT, jwtVerify, createLocalJWKSet } from 'jose';
import Provider from 'oidc-provider';
// The provider's own in-memory adapter, one store per instance we make: rebuilding the
// provider (new client, new keys) keeps the store, forgetting replaces it.
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js';

// Our stdout is the harness's pipe, read up to `listening <port>` and then closed: the
// provider's notices (console.info) go to stderr, and a late write cannot kill us by EPIPE.
console.info = (...args) => console.error(...args);
process.stdout.on('error', () => {});

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

// Clients registered at run time by /admin/clients, by client_id (they replace a built-in
// one of the same id).
const registered = new Map();

let keys;
let provider;
let callback;
let store = createMemoryAdapter();
const stats = {
  token: 0, jwks: 0, grants: {}, grant_errors: {}, refresh_failed: 0, logins: 0, login_failed: 0,
};

function allClients() {
  return [...clients.filter((c) => !registered.has(c.client_id)), ...registered.values()];
}

// A client may only be given scopes the provider supports, so the provider supports every
// scope some client names.
function allScopes() {
  const scopes = new Set([...SCOPES.split(' '), 'offline_access']);
  for (const c of allClients()) {
    for (const s of (c.scope ?? '').split(' ')) if (s) scopes.add(s);
  }
  return [...scopes];
}

const count = (map, key) => { map[key] = (map[key] ?? 0) + 1; };

async function build(issuer) {
  keys ??= await makeKeys();
  const p = new Provider(issuer, {
    clients: allClients(),
    scopes: allScopes(),
    adapter: store,
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    findAccount: (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({
        sub, name: sub, preferred_username: sub, email: `${sub}@users.test`, email_verified: true,
      }),
    }),
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    // Refresh tokens for every client allowed the grant (not only with offline_access and
    // prompt=consent), not tied to the browser session, and a new one on every use.
    issueRefreshToken: async (_ctx, c) => c.grantTypeAllowed('refresh_token'),
    expiresWithSession: async () => false,
    rotateRefreshToken: () => true,
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
        getResourceServerInfo: (_ctx, resource, c) => ({
          scope: [...new Set([...SCOPES.split(' '), ...(c?.scope ?? '').split(' ')])].filter(Boolean).join(' '),
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
  p.on('grant.success', (ctx) => {
    // The token-exchange handler answers its own refusals (400) and still ends in success.
    if (ctx.status < 400) count(stats.grants, ctx.oidc.params.grant_type);
  });
  p.on('grant.error', (ctx) => {
    const type = ctx.oidc?.params?.grant_type ?? 'unknown';
    count(stats.grant_errors, type);
    if (type === 'refresh_token') stats.refresh_failed += 1;
  });
  // A client whose metadata the provider refuses fails here, not at its first request.
  for (const c of registered.values()) await p.Client.find(c.client_id);
  return p;
}

async function rebuild(issuer) {
  provider = await build(issuer);
  callback = provider.callback();
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
    keys = await makeKeys();
    await rebuild(issuer);
    return json(res, 200, { kids: Object.values(keys).map((k) => k.kid) });
  }
  if (path === '/admin/clients' && req.method === 'POST') {
    let metadata;
    try {
      metadata = JSON.parse(await readBody(req));
    } catch (e) {
      return json(res, 400, { error: 'invalid_json', error_description: String(e) });
    }
    if (typeof metadata?.client_id !== 'string' || !metadata.client_id) {
      return json(res, 400, { error: 'invalid_client_metadata', error_description: 'client_id is required' });
    }
    const previous = registered.get(metadata.client_id);
    registered.set(metadata.client_id, metadata);
    try {
      await rebuild(issuer);
    } catch (e) {
      if (previous) registered.set(metadata.client_id, previous);
      else registered.delete(metadata.client_id);
      await rebuild(issuer);
      return json(res, 400, { error: e.error ?? 'invalid_client_metadata', error_description: e.error_description ?? String(e) });
    }
    return json(res, 200, { client_id: metadata.client_id });
  }
  if (path === '/admin/forget' && req.method === 'POST') {
    store = createMemoryAdapter();
    await rebuild(issuer);
    return json(res, 200, { forgotten: true });
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

const escapeHtml = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

function html(res, status, title, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>\n<body>\n${body}\n</body></html>\n`);
}

function loginPage(res, details, error) {
  const { uid, params } = details;
  html(res, 200, 'Sign-in', `<h1>Sign in</h1>
<p>to <b>${escapeHtml(params.client_id)}</b> (scope: <code>${escapeHtml(params.scope)}</code>)</p>
${error ? `<p class="error">${escapeHtml(error)}</p>\n` : ''}<form id="login" method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
  <input type="hidden" name="prompt" value="login">
  <input type="text" name="login" placeholder="login" value="${escapeHtml(params.login_hint)}" autofocus>
  <input type="password" name="password" placeholder="password">
  <button type="submit">Sign in</button>
</form>
<a href="/interaction/${escapeHtml(uid)}/abort">Cancel</a>`);
}

function consentPage(res, details) {
  const { uid, params, prompt, session } = details;
  const d = prompt.details;
  const scopes = [...(d.missingOIDCScope ?? []), ...Object.values(d.missingResourceScopes ?? {}).flat()];
  const resources = Object.keys(d.missingResourceScopes ?? {});
  html(res, 200, 'Authorize', `<h1>Authorize</h1>
<p><b>${escapeHtml(params.client_id)}</b> asks <b>${escapeHtml(session?.accountId)}</b> for
<code>${escapeHtml(scopes.join(' '))}</code>${resources.length ? ` on <code>${escapeHtml(resources.join(' '))}</code>` : ''}</p>
<form id="consent" method="post" action="/interaction/${escapeHtml(uid)}/confirm">
  <input type="hidden" name="prompt" value="consent">
  <button type="submit" autofocus>Allow</button>
</form>
<a href="/interaction/${escapeHtml(uid)}/abort">Deny</a>`);
}

// Our own interaction pages (devInteractions accept any password): login checks
// `<login>-password`, consent grants everything the prompt says is missing.
async function interaction(req, res, path) {
  const [, , uid, action] = path.split('/');
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (e) {
    return html(res, 400, 'Error', `<h1>Error</h1><p class="error">${escapeHtml(e.error_description ?? e.message)}</p>`);
  }
  if (details.uid !== uid) {
    return html(res, 400, 'Error', '<h1>Error</h1><p class="error">this interaction is not the current one</p>');
  }
  const { prompt, params, session } = details;
  if (action === undefined && req.method === 'GET') {
    if (prompt.name === 'login') return loginPage(res, details);
    if (prompt.name === 'consent') return consentPage(res, details);
    return html(res, 501, 'Error', `<p class="error">prompt ${escapeHtml(prompt.name)} is not implemented</p>`);
  }
  if (action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }
  if (req.method !== 'POST') return html(res, 405, 'Error', '<p class="error">method not allowed</p>');
  const form = new URLSearchParams(await readBody(req));
  if (action === 'login' && prompt.name === 'login') {
    const login = form.get('login') ?? '';
    if (!login || form.get('password') !== `${login}-password`) {
      stats.login_failed += 1;
      return loginPage(res, details, 'Invalid login or password.');
    }
    stats.logins += 1;
    return provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  }
  if (action === 'confirm' && prompt.name === 'consent') {
    const d = prompt.details;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    for (const [indicator, scope] of Object.entries(d.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scope.join(' '));
    }
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  return html(res, 400, 'Error', `<p class="error">${escapeHtml(action)} does not answer the ${escapeHtml(prompt.name)} prompt</p>`);
}

const server = http.createServer((req, res) => {
  const path = req.url.split('?')[0];
  if (path.startsWith('/admin/')) {
    admin(req, res, provider.issuer).catch((e) => json(res, 500, { error: String(e) }));
    return;
  }
  if (path.startsWith('/interaction/')) {
    interaction(req, res, path).catch((e) => html(res, 500, 'Error', `<p class="error">${escapeHtml(String(e))}</p>`));
    return;
  }
  if (path === '/token') stats.token += 1;
  if (path === '/jwks') stats.jwks += 1;
  callback(req, res);
});

server.listen(0, '127.0.0.1', async () => {
  const { port } = server.address();
  await rebuild(`http://127.0.0.1:${port}`);
  process.stdout.write(`listening ${port}\n`);
});

// The test harness kills us; with IDP_EXIT_WITH_STDIN=1 we also stop when our parent goes
// away (its end of our stdin closes), so no provider outlives an aborted test run.
if (process.env.IDP_EXIT_WITH_STDIN === '1') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}
