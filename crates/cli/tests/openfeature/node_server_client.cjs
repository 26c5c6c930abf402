// The official Node server SDK and OFREP provider against a running `liftoff serve`.
// Usage: node node_server_client.cjs BASE_URL EVAL_KEY ADMIN_TOKEN BOOL_FLAG USER_IN USER_OUT
// Prints one JSON object of what the SDK resolved; crates/cli/tests/flags.rs judges it.
const { OpenFeature } = require('@openfeature/server-sdk');
const { OFREPProvider } = require('@openfeature/ofrep-provider');

const [base, key, admin, flag, userIn, userOut] = process.argv.slice(2);

const seen = (d) => ({
  value: d.value,
  variant: d.variant ?? null,
  reason: d.reason ?? null,
  error_code: d.errorCode ?? null,
});

(async () => {
  await OpenFeature.setProviderAndWait(
    new OFREPProvider({ baseUrl: base, headers: [['X-API-Key', key]] }),
  );
  const client = OpenFeature.getClient();
  const staff = { email: 'jo@example.com' };
  const other = { email: 'sam@other.org' };
  const out = {
    bool_in: seen(await client.getBooleanDetails(flag, false, { targetingKey: userIn, ...staff })),
    bool_out: seen(await client.getBooleanDetails(flag, true, { targetingKey: userOut, ...other })),
    string_staff: seen(await client.getStringDetails('checkout_theme', 'none', { targetingKey: userIn, ...staff })),
    string_other: seen(await client.getStringDetails('checkout_theme', 'none', { targetingKey: userOut, ...other })),
    missing: seen(await client.getBooleanDetails('no_such_flag', true, { targetingKey: userIn })),
    wrong_type: seen(await client.getBooleanDetails('checkout_theme', false, { targetingKey: userIn })),
  };
  // The seed runbook's own call, through the admin API: the kill switch.
  const resp = await fetch(`${base}/api/admin/feature-flags`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${admin}` },
    body: JSON.stringify({ flag, enabled: false }),
  });
  if (!resp.ok) throw new Error(`admin API answered ${resp.status}`);
  out.after_disable = seen(await client.getBooleanDetails(flag, true, { targetingKey: userIn, ...staff }));
  await OpenFeature.close();
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
