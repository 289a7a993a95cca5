// Compiled (not run) by client.test.mjs against the types openapi-typescript
// generates from the served /openapi.v3.json: the main calls, typed.
import createClient from 'openapi-fetch';
import type { components, paths } from './consentd-api.js';

type Status = components['schemas']['rpcStatus'];

export async function mainCalls(baseUrl: string, apiKey: string): Promise<Status | undefined> {
  const client = createClient<paths>({ baseUrl });
  const headers = { Authorization: `Bearer ${apiKey}` };
  const v = await client.POST('/v1/visitors', { body: { region: 'DE' } });
  const id: string = v.data?.subject_id ?? '';
  const u = await client.PATCH('/v1/subjects/{subject_id}/consent', {
    params: { path: { subject_id: id } }, headers, body: { decisions: { analytics: true }, source: 'SOURCE_API' },
  });
  const revision: string | undefined = u.data?.consent?.revision;
  const c = await client.GET('/v1/subjects/{subject_id}/purposes/{purpose}:check', {
    params: { path: { subject_id: id, purpose: 'analytics' }, query: { min_revision: revision } }, headers,
  });
  const allowed: boolean | undefined = c.data?.allowed;
  await client.GET('/v1/subjects/{subject_id}/consent', { params: { path: { subject_id: id } }, headers });
  await client.POST('/v1/subjects/{subject_id}/consent:withdraw', { params: { path: { subject_id: id } }, headers, body: { purposes: ['analytics'] } });
  const e = await client.GET('/v1/subjects/{subject_id}:export', { params: { path: { subject_id: id }, query: { reason: 'audit' } }, headers });
  void allowed;
  return e.error;
}
