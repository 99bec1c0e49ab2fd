// The segments playground: GraphiQL 5, bundled with everything it loads (Monaco and
// its workers, styles, fonts), an API key field, and the example operations of
// ./examples as its first tabs.
import 'graphiql/setup-workers/vite';
import 'graphiql/style.css';
import './playground.css';

import { createElement as h, StrictMode, useEffect, useMemo, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { parse } from 'graphql';

// The server's config for this page (endpoint, and the demo key in `serve --demo`),
// HTML-escaped into a meta tag: no inline script, so the CSP can forbid them all.
function readConfig() {
  const meta = document.querySelector('meta[name="segments-playground"]');
  try {
    return JSON.parse(meta ? meta.content : '{}') || {};
  } catch {
    return {};
  }
}

const config = readConfig();
const endpoint = config.endpoint || '/graphql';
const keyStorage = 'segments:apiKey';

// The examples, one tab each, in file-name order; each .graphql has a sibling .json
// with its variables.
const documents = import.meta.glob('./examples/*.graphql', { query: '?raw', import: 'default', eager: true });
const variables = import.meta.glob('./examples/*.json', { query: '?raw', import: 'default', eager: true });
const defaultTabs = Object.keys(documents)
  .sort()
  .map((path) => ({
    query: documents[path],
    variables: variables[path.replace(/\.graphql$/, '.json')] || '',
  }));

// GraphiQL opens defaultTabs only when it has stored no tabs, and then shows the first
// tab's query but not its variables (graphiql 5.4): those are passed on first visits.
let firstVisit = true;
try {
  firstVisit = localStorage.getItem('graphiql:tabState') === null;
} catch {
  // No storage: every visit is a first one.
}

// GraphiQL's storage: localStorage, without the request headers typed in the Headers
// editor, which may hold a key. shouldPersistHeaders: false keeps them out of the tabs
// GraphiQL stores, but its history plugin stores every run's headers in
// graphiql:queries (and a favorite's in graphiql:favorites) regardless (graphiql
// 5.4), so a key typed as an Authorization header would stay in the browser for good.
// Their headers are stored as null, as GraphiQL stores a tab's; graphiql:headers (the
// editor's content, stored only when headers persist) is never stored. What older
// builds stored is cleaned when the page opens.
const listsWithHeaders = ['graphiql:queries', 'graphiql:favorites', 'graphiql:tabState'];

// withoutHeaders returns what to store under key for value: null for nothing.
function withoutHeaders(key, value) {
  if (key === 'graphiql:headers') return null;
  if (!listsWithHeaders.includes(key) || value == null) return value;
  try {
    // Only the lists' objects have keys named headers: queries and variables are strings.
    return JSON.stringify(JSON.parse(value), (k, v) => (k === 'headers' ? null : v));
  } catch {
    return null; // not what GraphiQL wrote: it could not read it either
  }
}

function graphiqlStorage() {
  let ls;
  try {
    ls = window.localStorage;
    ls.length; // throws where storage is off
  } catch {
    return null; // GraphiQL then stores nothing
  }
  const ours = () => Object.keys(ls).filter((k) => k.startsWith('graphiql:'));
  const storage = {
    getItem: (key) => ls.getItem(key),
    setItem(key, value) {
      const v = withoutHeaders(key, value);
      if (v == null) ls.removeItem(key);
      else ls.setItem(key, v);
    },
    removeItem: (key) => ls.removeItem(key),
    get length() {
      return ours().length;
    },
    clear() {
      ours().forEach((k) => ls.removeItem(k));
    },
  };
  try {
    ['graphiql:headers', ...listsWithHeaders].forEach((k) => {
      const v = ls.getItem(k);
      if (v !== null) storage.setItem(k, v);
    });
  } catch {
    // A full storage: what is stored stays until GraphiQL writes it again.
  }
  return storage;
}

const storage = graphiqlStorage();

function initialKey() {
  // The demo's key wins: it is the one that works with this server.
  if (config.apiKey) return config.apiKey;
  try {
    return localStorage.getItem(keyStorage) || '';
  } catch {
    return '';
  }
}

// withCurrentOperationName drops an operationName the document does not define.
// Right after a tab switch, GraphiQL 5.4 can send the previous tab's operation name
// with the new tab's document, which the server rightly refuses; with one operation in
// the document, no name is needed.
function withCurrentOperationName(params) {
  if (!params.operationName) return params;
  let ops;
  try {
    ops = parse(params.query).definitions.filter((d) => d.kind === 'OperationDefinition');
  } catch {
    return params; // let the server report the syntax error
  }
  if (ops.some((d) => d.name && d.name.value === params.operationName)) return params;
  return ops.length === 1 ? { ...params, operationName: undefined } : params;
}

function makeFetcher(key) {
  return async (params, opts) => {
    const typed = Object.keys((opts && opts.headers) || {}).some((k) => k.toLowerCase() === 'authorization');
    // Without a key the server can only answer 401: say so without asking it.
    if (!key && !typed) {
      return { errors: [{ message: 'Enter your API key in the field above (it is sent as Authorization: Bearer <key>).' }] };
    }
    const headers = {
      'Content-Type': 'application/json',
      Accept: 'application/graphql-response+json, application/json;q=0.9',
    };
    if (key) headers.Authorization = `Bearer ${key}`;
    params = withCurrentOperationName(params);
    // Headers typed into GraphiQL's headers editor win over the key field.
    Object.assign(headers, (opts && opts.headers) || {});
    const res = await fetch(endpoint, {
      method: 'POST',
      headers,
      body: JSON.stringify(params),
      credentials: 'same-origin',
    });
    const text = await res.text();
    try {
      return JSON.parse(text);
    } catch {
      return { errors: [{ message: `HTTP ${res.status}: ${text}` }] };
    }
  };
}

function Playground() {
  const [key, setKey] = useState(initialKey);
  // The key GraphiQL uses: it changes a moment after typing stops, so that the schema
  // is fetched again once, not at every keystroke.
  const [activeKey, setActiveKey] = useState(key);
  useEffect(() => {
    const t = setTimeout(() => setActiveKey(key.trim()), 300);
    return () => clearTimeout(t);
  }, [key]);
  useEffect(() => {
    try {
      if (activeKey) localStorage.setItem(keyStorage, activeKey);
      else localStorage.removeItem(keyStorage);
    } catch {
      // Storage may be off (private mode): the key then lasts as long as the page.
    }
  }, [activeKey]);
  const fetcher = useMemo(() => makeFetcher(activeKey), [activeKey]);

  return h(
    'div',
    { className: 'segments-playground' },
    h(
      'header',
      { className: 'segments-bar' },
      h('strong', null, 'segments'),
      h(
        'label',
        { htmlFor: 'api-key' },
        'API key',
        h('input', {
          id: 'api-key',
          type: 'password',
          autoComplete: 'off',
          spellCheck: false,
          placeholder: 'seg_…  (sent as Authorization: Bearer <key>)',
          value: key,
          onChange: (e) => setKey(e.target.value),
        }),
      ),
      h('span', { className: 'segments-hint' }, activeKey ? `POST ${endpoint}` : 'Enter an API key to run operations'),
    ),
    h(
      'main',
      { className: 'segments-graphiql' },
      h(GraphiQL, {
        fetcher,
        defaultTabs,
        initialVariables: firstVisit ? defaultTabs[0].variables : undefined,
        defaultEditorToolsVisibility: 'variables',
        // The key field sends the key; headers typed in the editor stay in this tab:
        // not stored with the tabs, nor (storage) with the history.
        shouldPersistHeaders: false,
        storage,
        // The docs explorer shows the schema's own description.
        schemaDescription: true,
      }),
    ),
  );
}

createRoot(document.getElementById('root')).render(h(StrictMode, null, h(Playground)));
