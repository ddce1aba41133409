// The help centre's contact form: while the visitor types, the articles that may answer the question
// appear (the form works without this). The articles shown are sent with the question.
(function () {
  'use strict';
  const form = document.getElementById('contact-form');
  const box = document.getElementById('suggestions');
  if (!form || !box) return;
  const list = box.querySelector('ul');
  const seen = document.getElementById('seen');
  const shown = new Set();
  let timer = null;
  let asked = 0;

  async function refresh() {
    const text = (form.elements.subject.value + ' ' + form.elements.text.value).trim();
    const mine = ++asked;
    if (text.length < 3) return;
    const url = new URL(form.dataset.suggest, window.location.href);
    url.searchParams.set('q', text.slice(0, 500));
    const response = await fetch(url, { credentials: 'omit' });
    if (mine !== asked || !response.ok) return;
    const found = await response.json();
    list.replaceChildren();
    for (const article of found) {
      const item = document.createElement('li');
      const link = document.createElement('a');
      link.href = article.url;
      link.textContent = article.title;
      item.append(link);
      list.append(item);
      shown.add(article.id);
    }
    box.hidden = found.length === 0;
    seen.value = Array.from(shown).join(',');
  }

  form.addEventListener('input', function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 350);
  });
})();
