/**
 * Postdesk's Gmail add-on shim: small and boring on purpose.
 *
 * Each trigger posts its event object to the Postdesk backend with the user's Google ID token, and
 * turns the JSON that comes back (Google Workspace add-on card v1, in the add-on HTTP runtime's
 * response shape) into CardService objects. All decisions, permissions and words live in the backend.
 * The backend's base URL is POSTDESK_BACKEND_URL in Config.js (written by `postdesk addon manifest`);
 * the script property POSTDESK_URL, when set, overrides it.
 */

/** @typedef {Record<string, any>} Json */

var POSTDESK_ACTION = 'onPostdeskAction';

/** @param {Json} e */
function onHomepage(e) {
  return toCards_(post_('addon/v1/homepage', e, {}));
}

/** @param {Json} e */
function onMyQueue(e) {
  var cards = toCards_(post_('addon/v1/homepage', e, {}));
  return CardService.newUniversalActionResponseBuilder().displayAddOnCards(cards).build();
}

/** @param {Json} e */
function onSettings(e) {
  var answer = post_('addon/v1/action', withParameters_(e, { do: 'settings' }), {});
  var link = ((answer.renderActions || {}).action || {}).link || {};
  return CardService.newUniversalActionResponseBuilder()
    .setOpenLink(CardService.newOpenLink().setUrl(String(link.url || backendUrl_())))
    .build();
}

/** @param {Json} e */
function onGmailMessage(e) {
  return toCards_(post_('addon/v1/message', e, { rfc822MessageId: currentMessageId_(e) }));
}

/** @param {Json} e */
function onGmailCompose(e) {
  return toCards_(post_('addon/v1/compose', e, {}));
}

/** Every button of every card calls this; the backend decides what the click means. @param {Json} e */
function onPostdeskAction(e) {
  return toActionResponse_(post_('addon/v1/action', e, {}));
}

// --- talking to the backend ------------------------------------------------------------------------

/** @returns {string} */
function backendUrl_() {
  var url = PropertiesService.getScriptProperties().getProperty('POSTDESK_URL') || POSTDESK_BACKEND_URL;
  if (!url) throw new Error('Run postdesk addon manifest (Config.js) or set the script property POSTDESK_URL');
  return url.charAt(url.length - 1) === '/' ? url : url + '/';
}

/** The open message's RFC 822 Message-ID, read with the current-message access token. @param {Json} e */
function currentMessageId_(e) {
  var gmail = e.gmail || {};
  if (!gmail.accessToken || !gmail.messageId) return '';
  GmailApp.setCurrentMessageAccessToken(gmail.accessToken);
  return GmailApp.getMessageById(gmail.messageId).getHeader('Message-ID') || '';
}

/**
 * @param {Json} e
 * @param {Record<string, string>} parameters
 * @returns {Json}
 */
function withParameters_(e, parameters) {
  var common = Object.assign({}, e.commonEventObject || {});
  common.parameters = Object.assign({}, common.parameters || {}, parameters);
  return Object.assign({}, e, { commonEventObject: common });
}

/**
 * POST the event (without the message access token: the backend never needs it) and parse the answer.
 * @param {string} path
 * @param {Json} e
 * @param {Json} extra
 * @returns {Json}
 */
function post_(path, e, extra) {
  var event = Object.assign({}, e);
  if (event.gmail) {
    event.gmail = Object.assign({}, event.gmail);
    delete event.gmail.accessToken;
  }
  event.postdesk = extra;
  var response = UrlFetchApp.fetch(backendUrl_() + path, {
    method: 'post',
    contentType: 'application/json',
    payload: JSON.stringify(event),
    headers: { Authorization: 'Bearer ' + ScriptApp.getIdentityToken() },
    muteHttpExceptions: true,
  });
  var status = response.getResponseCode();
  var body = /** @type {Json} */ ({});
  try {
    body = JSON.parse(response.getContentText());
  } catch (_ignored) {
    body = {};
  }
  if (status === 200 || status === 403) return body;
  var message = status === 401
    ? 'Postdesk does not know you: ask your admin to add you as an agent.'
    : 'Postdesk answered ' + status + '. Try again in a minute.';
  return { action: { navigations: [{ pushCard: { header: { title: 'Postdesk' }, sections: [{ widgets: [{ textParagraph: { text: message } }] }] } }] } };
}

// --- JSON → CardService --------------------------------------------------------------------------------

/** @param {Json} answer @returns {GoogleAppsScript.Card_Service.Card[]} */
function toCards_(answer) {
  var navigations = ((answer.action || (answer.renderActions || {}).action || {}).navigations) || [];
  /** @type {GoogleAppsScript.Card_Service.Card[]} */
  var result = [];
  navigations.forEach(/** @param {Json} n */ function (n) {
    var card = n.pushCard || n.updateCard;
    if (card) result.push(buildCard_(card));
  });
  return result;
}

/** @param {Json} answer */
function toActionResponse_(answer) {
  var render = answer.renderActions || answer;
  var draft = ((render.hostAppAction || {}).gmailAction || {}).updateDraftActionMarkup;
  if (draft) return buildDraftUpdate_(draft);
  var action = render.action || {};
  var builder = CardService.newActionResponseBuilder();
  (action.navigations || []).forEach(/** @param {Json} n */ function (n) {
    if (n.pushCard) builder.setNavigation(CardService.newNavigation().pushCard(buildCard_(n.pushCard)));
    if (n.updateCard) builder.setNavigation(CardService.newNavigation().updateCard(buildCard_(n.updateCard)));
  });
  if (action.notification) {
    builder.setNotification(CardService.newNotification().setText(String(action.notification.text)));
  }
  if (action.link) builder.setOpenLink(CardService.newOpenLink().setUrl(String(action.link.url)));
  return builder.build();
}

/** @param {Json} markup */
function buildDraftUpdate_(markup) {
  var body = markup.updateBody || {};
  var update = CardService.newUpdateDraftBodyAction();
  (body.insertContents || []).forEach(/** @param {Json} item */ function (item) {
    var type = item.contentType === 'MUTABLE_HTML' ? CardService.ContentType.MUTABLE_HTML : CardService.ContentType.TEXT;
    update.addUpdateContent(String(item.content), type);
  });
  update.setUpdateType(CardService.UpdateDraftBodyType.IN_PLACE_INSERT); // the only kind Postdesk sends
  return CardService.newUpdateDraftActionResponseBuilder().setUpdateDraftBodyAction(update).build();
}

/** @param {Json} json @returns {GoogleAppsScript.Card_Service.Card} */
function buildCard_(json) {
  var builder = CardService.newCardBuilder();
  var header = json.header || {};
  var cardHeader = CardService.newCardHeader().setTitle(String(header.title || 'Postdesk'));
  if (header.subtitle) cardHeader.setSubtitle(String(header.subtitle));
  builder.setHeader(cardHeader);
  if (json.name) builder.setName(String(json.name));
  (json.sections || []).forEach(/** @param {Json} s */ function (s) {
    builder.addSection(buildSection_(s));
  });
  return builder.build();
}

/** @param {Json} json */
function buildSection_(json) {
  var section = CardService.newCardSection();
  if (json.header) section.setHeader(String(json.header));
  if (json.collapsible) {
    section.setCollapsible(true);
    section.setNumUncollapsibleWidgets(Number(json.uncollapsibleWidgetsCount || 0));
  }
  (json.widgets || []).forEach(/** @param {Json} w */ function (w) {
    section.addWidget(buildWidget_(w));
  });
  return section;
}

/** @param {Json} onClick @returns {GoogleAppsScript.Card_Service.Action | null} */
function buildAction_(onClick) {
  if (!onClick || !onClick.action) return null;
  /** @type {Record<string, string>} */
  var parameters = {};
  (onClick.action.parameters || []).forEach(/** @param {Json} p */ function (p) {
    parameters[String(p.key)] = String(p.value);
  });
  return CardService.newAction().setFunctionName(POSTDESK_ACTION).setParameters(parameters);
}

/** @param {Json} onClick */
function buildLink_(onClick) {
  return onClick && onClick.openLink ? CardService.newOpenLink().setUrl(String(onClick.openLink.url)) : null;
}

/** @param {Json} json */
function buildButton_(json) {
  var button = CardService.newTextButton().setText(String(json.text));
  var action = buildAction_(json.onClick);
  var link = buildLink_(json.onClick);
  if (action) button.setOnClickAction(action);
  if (link) button.setOpenLink(link);
  if (json.type === 'FILLED') button.setTextButtonStyle(CardService.TextButtonStyle.FILLED);
  return button;
}

/** @param {Json} w @returns {GoogleAppsScript.Card_Service.Widget} */
function buildWidget_(w) {
  if (w.textParagraph) return CardService.newTextParagraph().setText(String(w.textParagraph.text));
  if (w.decoratedText) {
    var d = w.decoratedText;
    var text = CardService.newDecoratedText().setText(String(d.text)).setWrapText(Boolean(d.wrapText));
    if (d.topLabel) text.setTopLabel(String(d.topLabel));
    if (d.bottomLabel) text.setBottomLabel(String(d.bottomLabel));
    var action = buildAction_(d.onClick);
    if (action) text.setOnClickAction(action);
    return text;
  }
  if (w.buttonList) {
    var set = CardService.newButtonSet();
    (w.buttonList.buttons || []).forEach(/** @param {Json} b */ function (b) {
      set.addButton(buildButton_(b));
    });
    return set;
  }
  if (w.selectionInput) {
    var s = w.selectionInput;
    var input = CardService.newSelectionInput()
      .setType(CardService.SelectionInputType.DROPDOWN)
      .setFieldName(String(s.name))
      .setTitle(String(s.label || ''));
    (s.items || []).forEach(/** @param {Json} item */ function (item) {
      input.addItem(String(item.text), String(item.value), Boolean(item.selected));
    });
    return input;
  }
  if (w.textInput) {
    var t = w.textInput;
    return CardService.newTextInput()
      .setFieldName(String(t.name))
      .setTitle(String(t.label || ''))
      .setMultiline(t.type === 'MULTIPLE_LINE');
  }
  if (w.dateTimePicker) {
    var p = w.dateTimePicker;
    var picker = CardService.newDateTimePicker()
      .setFieldName(String(p.name))
      .setTitle(String(p.label || ''))
      .setTimeZoneOffsetInMins(Number(p.timezoneOffsetDate || 0));
    if (p.valueMsEpoch) picker.setValueInMsSinceEpoch(Number(p.valueMsEpoch));
    return picker;
  }
  if (w.divider) return CardService.newDivider();
  throw new Error('Postdesk sent a widget this add-on does not know: ' + Object.keys(w).join(', '));
}

if (typeof module !== 'undefined') {
  module.exports = { onHomepage, onMyQueue, onSettings, onGmailMessage, onGmailCompose, onPostdeskAction };
}
