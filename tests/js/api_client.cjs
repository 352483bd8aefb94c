// Runs @opendatasoft/api-client against the exportd at argv[2]; prints one JSON object of what
// each call answered (or the error it threw), for tests/test_clients.py to check.
const { ApiClient, fromCatalog } = require('@opendatasoft/api-client');

const client = new ApiClient({ domain: process.argv[2], hideDeprecatedWarning: true });
const text = { interceptResponse: async (response) => ({ status: response.status, type: response.headers.get('content-type'), body: await response.text() }) };
const dataset = fromCatalog().dataset('demo-events');

const calls = {
  catalog: () => client.get(fromCatalog().datasets().limit(10)),
  dataset: () => client.get(dataset.itself()),
  records: () => client.get(dataset.records().where("city = 'Lille'").orderBy('event_id').select('event_id, city').limit(5)),
  groups: () => client.get(dataset.records().select('count(*) as n').groupBy('city').orderBy('city').limit(3)),
  grouped_page: () => client.get(dataset.records().select('count(*) as n').groupBy('city').orderBy('city').limit(3).offset(3)),
  facets: () => client.get(dataset.facets().facet('category')),
  export_json: () => client.get(dataset.export('json').where("city = 'Lille'").select('event_id, city').orderBy('event_id')),
  export_csv: () => client.get(dataset.export('csv').where("city = 'Lille'").select('event_id, city').orderBy('event_id'), text),
  unknown_field: () => client.get(dataset.records().select('nosuchfield')),
  catalog_facets: () => client.get(fromCatalog().facets()),
  catalog_export_csv: () => client.get(fromCatalog().export('csv'), text),
  catalog_export_json: () => client.get(fromCatalog().export('json')),
};

(async () => {
  const out = {};
  for (const [name, call] of Object.entries(calls)) {
    try {
      out[name] = { ok: await call() };
    } catch (error) {
      out[name] = { error: error.constructor.name, status: error.response ? error.response.status : null, detail: error.error || String(error) };
    }
  }
  process.stdout.write(JSON.stringify(out));
})();
