// The Apps Script shim, driven in node with a recording CardService, UrlFetchApp, ScriptApp and
// GmailApp, on the backend's real answers (build/addon-cards/*.json, written by tests/test_addon.py).
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

const GOLDEN = path.join(__dirname, '..', '..', 'build', 'addon-cards');
const SOURCE = ['Config.js', 'Code.js'].map((name) => fs.readFileSync(path.join(__dirname, '..', name), 'utf8')).join('\n');

function golden(name) {
  const file = path.join(GOLDEN, name + '.json');
  assert.ok(fs.existsSync(file), `${file} is missing: run the Python tests first (make test does)`);
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

/** A builder that records every call; build() returns the builder itself. */
function recorder(kind, log) {
  const node = { kind, calls: [] };
  log.push(node);
  const proxy = new Proxy(node, {
    get(target, name) {
      if (name in target) return target[name];
      return (...args) => {
        target.calls.push([name, args]);
        return proxy;
      };
    },
  });
  return proxy;
}

function shim(answer, property = 'https://postdesk.example.com') {
  const log = [];
  const fetched = [];
  const enumProxy = new Proxy({}, { get: (_t, group) => new Proxy({}, { get: (_u, value) => `${String(group)}.${String(value)}` }) });
  const CardService = new Proxy({}, {
    get(_t, name) {
      if (typeof name === 'string' && name.startsWith('new')) return () => recorder(name.slice(3), log);
      return enumProxy[name];
    },
  });
  const sandbox = {
    CardService,
    UrlFetchApp: {
      fetch(url, options) {
        fetched.push({ url, options, body: JSON.parse(options.payload) });
        return { getResponseCode: () => answer.status, getContentText: () => JSON.stringify(answer.body) };
      },
    },
    ScriptApp: { getIdentityToken: () => 'id-token-of-the-user' },
    PropertiesService: { getScriptProperties: () => ({ getProperty: () => property }) },
    GmailApp: {
      setCurrentMessageAccessToken(token) { sandbox.tokenUsed = token; },
      getMessageById: () => ({ getHeader: (name) => (name === 'Message-ID' ? '<alice-1@customer.test>' : '') }),
    },
    module: { exports: {} },
  };
  vm.createContext(sandbox);
  vm.runInContext(SOURCE, sandbox);
  return { api: sandbox.module.exports, log, fetched, sandbox };
}

const EVENT = {
  commonEventObject: { userLocale: 'ru', timeZone: { id: 'Europe/Moscow' } },
  gmail: { messageId: '190a0001', threadId: '190a0001', accessToken: 'secret-message-token' },
};

function countWidgets(card) {
  return card.sections.reduce((n, s) => n + s.widgets.length, 0);
}

const WIDGET_KINDS = ['TextParagraph', 'DecoratedText', 'ButtonSet', 'SelectionInput', 'TextInput', 'DateTimePicker', 'Divider'];

test('the message trigger posts the event with the Message-ID, never the access token, and builds the card', () => {
  const answer = golden('message');
  const { api, log, fetched, sandbox } = shim(answer);
  const cards = api.onGmailMessage(EVENT);
  assert.equal(cards.length, 1);
  const [call] = fetched;
  assert.equal(call.url, 'https://postdesk.example.com/addon/v1/message');
  assert.equal(call.options.headers.Authorization, 'Bearer id-token-of-the-user');
  assert.equal(call.body.postdesk.rfc822MessageId, '<alice-1@customer.test>');
  assert.equal(call.body.gmail.accessToken, undefined);
  assert.equal(sandbox.tokenUsed, 'secret-message-token');
  const card = answer.body.action.navigations[0].pushCard;
  const header = log.find((n) => n.kind === 'CardHeader');
  assert.deepEqual(header.calls[0], ['setTitle', [card.header.title]]);
  const widgets = log.filter((n) => WIDGET_KINDS.includes(n.kind));
  assert.equal(widgets.length, countWidgets(card));
  const actions = log.filter((n) => n.kind === 'Action');
  assert.ok(actions.length > 5);
  for (const action of actions) {
    assert.deepEqual(action.calls[0], ['setFunctionName', ['onPostdeskAction']]);
    assert.equal(action.calls[1][0], 'setParameters');
    assert.ok(action.calls[1][1][0].do, 'every button says what it does');
  }
  const dropdowns = log.filter((n) => n.kind === 'SelectionInput');
  assert.ok(dropdowns.some((d) => d.calls.some(([name, args]) => name === 'setFieldName' && args[0] === 'priority')));
});

test('every golden trigger answer becomes cards with every widget translated', () => {
  for (const name of ['homepage', 'compose', 'no_access']) {
    const answer = golden(name);
    const { api, log } = shim(answer);
    const trigger = { homepage: api.onHomepage, compose: api.onGmailCompose, no_access: api.onGmailMessage }[name];
    const cards = trigger(EVENT);
    const card = answer.body.action.navigations[0].pushCard;
    assert.equal(cards.length, 1, name);
    assert.equal(log.filter((n) => WIDGET_KINDS.includes(n.kind)).length, countWidgets(card), name);
  }
});

test('button clicks become action responses: update, push, toast, link and a draft insert', () => {
  const expectations = {
    action_update: (log) => {
      assert.ok(log.find((n) => n.kind === 'Navigation').calls.some(([name]) => name === 'updateCard'));
      assert.ok(log.find((n) => n.kind === 'Notification'));
    },
    action_push: (log) => assert.ok(log.find((n) => n.kind === 'Navigation').calls.some(([name]) => name === 'pushCard')),
    action_notify: (log) => {
      const note = log.find((n) => n.kind === 'Notification');
      assert.match(note.calls[0][1][0], /unknown status/);
      assert.equal(log.find((n) => n.kind === 'Navigation'), undefined);
    },
    action_settings: (log) => assert.ok(log.find((n) => n.kind === 'OpenLink')),
    insert_template: (log) => {
      const update = log.find((n) => n.kind === 'UpdateDraftBodyAction');
      const [content, type] = update.calls.find(([name]) => name === 'addUpdateContent')[1];
      assert.match(content, /#1/);
      assert.equal(type, 'ContentType.TEXT');
      assert.ok(log.find((n) => n.kind === 'UpdateDraftActionResponseBuilder'));
    },
  };
  for (const [name, check] of Object.entries(expectations)) {
    const { api, log, fetched } = shim(golden(name));
    api.onPostdeskAction({ commonEventObject: { parameters: { do: 'x' } } });
    assert.equal(fetched[0].url, 'https://postdesk.example.com/addon/v1/action', name);
    check(log);
  }
});

test('without the script property the shim calls the backend Config.js names', () => {
  const { api, fetched } = shim({ status: 200, body: golden('homepage') }, null);
  api.onHomepage(EVENT);
  assert.equal(fetched[0].url, 'https://postdesk.example.com/addon/v1/homepage');
});

test('a refused token or a server error is a readable card, not a crash', () => {
  for (const status of [401, 500]) {
    const { api, log } = shim({ status, body: { error: { code: 'x', message: 'y' } } });
    const cards = api.onHomepage(EVENT);
    assert.equal(cards.length, 1);
    const text = log.find((n) => n.kind === 'TextParagraph').calls[0][1][0];
    assert.match(text, status === 401 ? /does not know you/ : /answered 500/);
  }
});

test('a widget the shim does not know is a loud error', () => {
  const { api } = shim({ status: 200, body: { action: { navigations: [{ pushCard: { header: { title: 't' }, sections: [{ widgets: [{ carousel: {} }] }] } }] } } });
  assert.throws(() => api.onHomepage(EVENT), /does not know: carousel/);
});
