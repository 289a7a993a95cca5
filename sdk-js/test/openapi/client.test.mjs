// The API contract as a client generator sees it: the OpenAPI documents that
// a real consentd serves (with Redis) pass @redocly/cli lint with no errors,
// openapi-typescript generates types from /openapi.v3.json that a typed use
// of the main calls compiles against, and an openapi-fetch client makes those
// calls against that consentd, an error answer included.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import createClient from 'openapi-fetch';
import openapiTS, { astToString } from 'openapi-typescript';
import { sdkDir, startEnv } from '../browser/harness.mjs';
// A service's generated client: the internal listener (the browser harness's
// consentd.url is the public listener, which has no OpenAPI document and no API keys).

const bin = (name) => join(sdkDir, 'node_modules/.bin', name);

describe('a generated client against a real consentd', () => {
  let env;
  let dir;
  const docs = {};
  before(async () => {
    env = await startEnv();
    dir = mkdtempSync(join(tmpdir(), 'consentd-openapi-'));
    for (const [name, path] of [['v2', '/openapi.json'], ['v3', '/openapi.v3.json']]) {
      const res = await fetch(env.consentd.internalUrl + path);
      assert.equal(res.status, 200, path);
      docs[name] = { text: await res.text(), file: join(dir, `${name}.json`) };
      writeFileSync(docs[name].file, docs[name].text);
    }
  });
  after(async () => {
    await env?.stopAll();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const name of ['v2', 'v3']) {
    test(`redocly lint: the served OpenAPI ${name} document has no errors`, () => {
      const r = spawnSync(bin('redocly'), ['lint', docs[name].file, '--format=summary'], {
        encoding: 'utf8', env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      });
      const out = r.stdout + r.stderr;
      const counts = out.split('\n').filter((l) => /^(error|warning) /.test(l));
      console.log(`redocly lint ${name}: ${counts.join('; ') || 'no problems'}`);
      assert.equal(r.status, 0, out);
      assert.ok(!counts.some((l) => l.startsWith('error')), out);
    });
  }

  test('the served documents carry a version and the title', () => {
    for (const name of ['v2', 'v3']) {
      const info = JSON.parse(docs[name].text).info;
      assert.equal(info.title, 'consentd API');
      assert.ok(info.version && info.version !== 'version not set', info.version);
    }
  });

  test('openapi-typescript types compile against a typed use of the main calls', async () => {
    const ast = await openapiTS(JSON.parse(docs.v3.text));
    writeFileSync(join(dir, 'consentd-api.d.ts'), astToString(ast));
    copyFileSync(join(sdkDir, 'test/openapi/typed-calls.ts'), join(dir, 'typed-calls.ts'));
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        strict: true, noEmit: true, target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext',
        skipLibCheck: true, typeRoots: [], types: [], lib: ['es2022', 'dom'],
        baseUrl: sdkDir, paths: { 'openapi-fetch': [join(sdkDir, 'node_modules/openapi-fetch')] },
      },
      files: ['typed-calls.ts', 'consentd-api.d.ts'],
    }));
    try {
      execFileSync(bin('tsc'), ['-p', join(dir, 'tsconfig.json')], { encoding: 'utf8', stdio: 'pipe' });
    } catch (e) {
      assert.fail(`tsc: ${e.stdout}${e.stderr}`);
    }
  });

  test('openapi-fetch: create visitor, update with an API key, check, get, withdraw, export, an error', async () => {
    const client = createClient({ baseUrl: env.consentd.internalUrl });
    const key = { Authorization: `Bearer ${env.consentd.apiKey}` };

    const visitor = await client.POST('/v1/visitors', { body: { region: 'DE' } });
    assert.equal(visitor.response.status, 200, JSON.stringify(visitor.error));
    const id = visitor.data.subject_id;
    assert.ok(id && visitor.data.token.token);

    const upd = await client.PATCH('/v1/subjects/{subject_id}/consent', {
      params: { path: { subject_id: id } }, headers: key,
      body: { decisions: { analytics: true, ads: false }, source: 'SOURCE_API' },
    });
    assert.equal(upd.response.status, 200, JSON.stringify(upd.error));
    const revision = upd.data.consent.revision;

    const check = await client.GET('/v1/subjects/{subject_id}/purposes/{purpose}:check', {
      params: { path: { subject_id: id, purpose: 'analytics' }, query: { min_revision: revision } }, headers: key,
    });
    assert.equal(check.response.status, 200, JSON.stringify(check.error));
    assert.deepEqual([check.data.allowed, check.data.reason], [true, 'REASON_EXPLICIT']);

    const got = await client.GET('/v1/subjects/{subject_id}/consent', { params: { path: { subject_id: id } }, headers: key });
    assert.equal(got.response.status, 200, JSON.stringify(got.error));
    const ads = got.data.consent.purposes.find((p) => p.purpose === 'ads');
    assert.equal(ads.allowed, false);

    const wd = await client.POST('/v1/subjects/{subject_id}/consent:withdraw', {
      params: { path: { subject_id: id } }, headers: key, body: { purposes: ['analytics'] },
    });
    assert.equal(wd.response.status, 200, JSON.stringify(wd.error));

    const exp = await client.GET('/v1/subjects/{subject_id}:export', {
      params: { path: { subject_id: id }, query: { reason: 'generated client test: access request' } }, headers: key,
    });
    assert.equal(exp.response.status, 200, JSON.stringify(exp.error));
    assert.equal(exp.data.subject_id, id);
    assert.ok(exp.data.events.length >= 2, 'the update and the withdrawal are in the history');

    // An error answer, parsed with the error schema (google.rpc.Status).
    const noKey = await client.GET('/v1/subjects/{subject_id}/consent', { params: { path: { subject_id: id } } });
    assert.equal(noKey.response.status, 401);
    assert.equal(noKey.error.code, 16);
    assert.equal(typeof noKey.error.message, 'string');
    const bad = await client.PATCH('/v1/subjects/{subject_id}/consent', {
      params: { path: { subject_id: id } }, headers: key, body: { decisions: { 'no such purpose': true } },
    });
    assert.equal(bad.response.status, 400);
    assert.equal(bad.error.code, 3);
    const violation = bad.error.details.find((d) => d['@type'] === 'type.googleapis.com/google.rpc.BadRequest');
    assert.ok(violation, JSON.stringify(bad.error));
  });

  test('the watch stream answers an error as a stream line, as documented', async () => {
    const res = await fetch(`${env.consentd.internalUrl}/v1/changes:watch`);
    assert.equal(res.status, 401);
    const body = JSON.parse(await res.text());
    assert.deepEqual(Object.keys(body), ['error'], JSON.stringify(body));
    assert.equal(body.error.code, 16);
    const line = JSON.parse(docs.v3.text).components.schemas.v1WatchConsentChangesStreamLine;
    assert.deepEqual(Object.keys(line.properties).sort(), ['error', 'result']);
  });
});
