// The official web SDK and OFREP web provider (static context: one bulk evaluation,
// cached, refreshed by polling with If-None-Match) against a running `liftoff serve`.
// Runs in Node (fetch is built in); a browser would also need CORS, which
// crates/cli/tests/flags.rs checks with preflight requests.
// Usage: node node_web_client.cjs BASE_URL EVAL_KEY ADMIN_TOKEN BOOL_FLAG USER_IN USER_OUT
const { OpenFeature, ProviderEvents } = require('@openfeature/web-sdk');
const { OFREPWebProvider } = require('@openfeature/ofrep-web-provider');

const [base, key, admin, flag, userIn, userOut] = process.argv.slice(2);

const seen = (d) => ({
  value: d.value,
  variant: d.variant ?? null,
  reason: d.reason ?? null,
  error_code: d.errorCode ?? null,
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

(async () => {
  await OpenFeature.setContext({ targetingKey: userIn, email: 'jo@example.com' });
  await OpenFeature.setProviderAndWait(
    new OFREPWebProvider({
      baseUrl: base,
      headers: [['X-API-Key', key]],
      pollInterval: 200,
      // Node has no localStorage; a browser would use it.
      cacheMode: 'disabled',
    }),
  );
  const client = OpenFeature.getClient();
  const out = {
    bool_in: seen(client.getBooleanDetails(flag, false)),
    string_staff: seen(client.getStringDetails('checkout_theme', 'none')),
    missing: seen(client.getBooleanDetails('no_such_flag', true)),
  };
  await OpenFeature.setContext({ targetingKey: userOut, email: 'sam@other.org' });
  out.bool_out = seen(client.getBooleanDetails(flag, true));
  out.string_other = seen(client.getStringDetails('checkout_theme', 'none'));
  await OpenFeature.setContext({ targetingKey: userIn, email: 'jo@example.com' });

  let changed = false;
  client.addHandler(ProviderEvents.ConfigurationChanged, () => {
    changed = true;
  });
  // Let a few polls go by unchanged (the daemon answers them 304), then flip the flag.
  await sleep(700);
  const resp = await fetch(`${base}/api/admin/feature-flags`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${admin}` },
    body: JSON.stringify({ flag, enabled: false }),
  });
  if (!resp.ok) throw new Error(`admin API answered ${resp.status}`);
  const deadline = Date.now() + 10000;
  while (!changed && Date.now() < deadline) await sleep(50);
  out.configuration_changed_event = changed;
  out.after_disable = seen(client.getBooleanDetails(flag, true));
  await OpenFeature.close();
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
