// The hosted checkout page's script. The server writes every state of the page, in the
// buyer's language and escaped; this script shows the right state and fills in values
// as text (never as markup). It follows the order with the long-poll by position
// (falling back to a poll every 3 s), so the page turns to success the moment the
// payment is recorded, without a reload.
'use strict';

(function () {
  const LONG_POLL_WAIT_SECONDS = 25;
  const FALLBACK_POLL_MS = 3000;
  // Long enough to read the membership's end date, short enough not to strand the buyer.
  const SUCCESS_REDIRECT_MS = 5000;
  const OPEN_STATUSES = ['created', 'pending'];
  const PAID_STATUSES = ['paid', 'partially_refunded', 'refunded'];

  const root = document.getElementById('checkout');
  if (!root) {
    return;
  }
  const data = root.dataset;
  const fragment = window.location.hash.slice(1);
  const base = data.base || (fragment ? '/checkout/' + encodeURIComponent(fragment) : '');
  const secret = base.split('/').pop();
  const embedded = new URLSearchParams(window.location.search).get('embed') === '1';
  let current = null;
  let following = 0;
  let countdown = null;
  let returning = null;

  function byId(id) {
    return document.getElementById(id);
  }

  function show(name) {
    let announced = '';
    for (const panel of document.querySelectorAll('[data-panel]')) {
      const visible = panel.dataset.panel === name;
      panel.hidden = !visible;
      if (visible) {
        announced = panel.dataset.announce || '';
      }
    }
    root.dataset.state = name;
    const status = byId('status');
    if (status.textContent !== announced) {
      status.textContent = announced;
    }
  }

  function tell(event, order) {
    if (embedded && window.parent !== window) {
      window.parent.postMessage(
        { source: 'payledger-checkout', event: event, order_id: order ? order.id : null },
        '*'
      );
    }
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function call(method, path, body) {
    const init = { method: method, cache: 'no-store', headers: { Accept: 'application/json' } };
    if (body) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(base + path, init);
  }

  function chosen(name) {
    const input = document.querySelector('input[name="' + name + '"]:checked');
    return input ? input.value : undefined;
  }

  async function newCode(choice) {
    stopCountdown();
    following += 1;
    show('loading');
    try {
      const response = await call('POST', '/orders', choice);
      if (response.status === 404) {
        show('gone');
        return;
      }
      if (response.status !== 201) {
        show('error');
        return;
      }
      follow(await response.json());
    } catch (error) {
      show('error');
    }
  }

  function resultUrl(order) {
    return '/checkout/result/' + encodeURIComponent(order.id) + '#' + secret;
  }

  function render(order) {
    current = order;
    for (const reference of document.querySelectorAll('.order-ref')) {
      reference.textContent = order.id;
    }
    if (OPEN_STATUSES.indexOf(order.status) >= 0) {
      if (!order.qr_url) {
        show('loading');
        return;
      }
      const image = byId('qr');
      if (image.getAttribute('src') !== order.qr_url) {
        image.setAttribute('src', order.qr_url);
      }
      const sandbox = byId('sandbox-link');
      if (order.sandbox_pay_url) {
        sandbox.href = order.sandbox_pay_url;
      }
      sandbox.hidden = !order.sandbox_pay_url;
      byId('amount').textContent = order.amount_yuan;
      byId('plan-name').textContent = order.plan_name;
      byId('order-id').textContent = order.id;
      startCountdown(order.expires_at);
      show('pay');
    } else if (PAID_STATUSES.indexOf(order.status) >= 0) {
      stopCountdown();
      const ends = order.membership_ends_at ? new Date(order.membership_ends_at) : null;
      byId('member-until').textContent = ends
        ? ends.toLocaleDateString(document.documentElement.lang)
        : '';
      const link = byId('success-link');
      if (data.successUrl) {
        const target = new URL(data.successUrl);
        target.searchParams.set('order_id', order.id);
        link.href = target.toString();
        link.hidden = false;
        if (!embedded && !returning) {
          returning = setTimeout(function () { window.location.assign(link.href); }, SUCCESS_REDIRECT_MS);
        }
      }
      const cancel = byId('cancel');
      if (cancel) {
        cancel.hidden = true;
      }
      show('paid');
      tell('success', order);
    } else if (order.status === 'expired') {
      stopCountdown();
      show('expired');
    } else {
      stopCountdown();
      show('failed');
    }
    const details = byId('details-link');
    if (details && data.base) {
      details.href = resultUrl(order);
      details.hidden = false;
    }
  }

  // Follows an order until it is settled: a long poll after the last position seen, or,
  // once a long poll fails, a plain poll every few seconds.
  async function follow(order) {
    following += 1;
    const mine = following;
    let position = order.position;
    let fallback = false;
    render(order);
    while (mine === following && OPEN_STATUSES.indexOf(current.status) >= 0) {
      const query = fallback ? '' : '?after=' + position + '&wait=' + LONG_POLL_WAIT_SECONDS;
      try {
        const response = await call('GET', '/orders/' + encodeURIComponent(order.id) + query);
        if (mine !== following) {
          return;
        }
        if (response.status === 200) {
          const next = await response.json();
          position = next.position;
          render(next);
        } else if (response.status === 404) {
          show('gone');
          return;
        } else if (response.status !== 304) {
          fallback = true;
        }
      } catch (error) {
        fallback = true;
      }
      if (fallback) {
        await sleep(FALLBACK_POLL_MS);
      }
    }
  }

  function startCountdown(expiresAt) {
    stopCountdown();
    const end = expiresAt ? Date.parse(expiresAt) : NaN;
    if (isNaN(end)) {
      return;
    }
    const clock = byId('countdown');
    clock.setAttribute('datetime', expiresAt);
    const tick = function () {
      const left = Math.max(0, Math.floor((end - Date.now()) / 1000));
      const minutes = Math.floor(left / 60);
      const seconds = left % 60;
      clock.textContent = minutes + ':' + (seconds < 10 ? '0' : '') + seconds;
      if (left === 0) {
        stopCountdown();
        show('expired');
      }
    };
    tick();
    countdown = setInterval(tick, 1000);
  }

  function stopCountdown() {
    if (countdown !== null) {
      clearInterval(countdown);
      countdown = null;
    }
  }

  async function resume(orderId) {
    try {
      const response = await call('GET', '/orders/' + encodeURIComponent(orderId));
      if (response.status !== 200) {
        show(response.status === 404 ? 'gone' : 'error');
        return;
      }
      follow(await response.json());
    } catch (error) {
      show('error');
    }
  }

  function retry() {
    if (current) {
      newCode({ plan_id: current.plan_id, channel: current.channel });
    } else if (data.order) {
      resume(data.order);
    } else {
      show('choose');
    }
  }

  const form = byId('choose-form');
  if (form) {
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      newCode({ plan_id: chosen('plan'), channel: chosen('channel') });
    });
  }
  for (const button of document.querySelectorAll('[data-action="retry"]')) {
    button.addEventListener('click', retry);
  }
  const cancel = byId('cancel');
  if (cancel) {
    cancel.addEventListener('click', function (event) {
      following += 1;
      stopCountdown();
      if (embedded) {
        event.preventDefault();
        tell('cancel', current);
      }
    });
  }

  const language = document.querySelector('a.lang');
  if (language && embedded) {
    const target = new URL(language.getAttribute('href'), window.location.href);
    target.searchParams.set('embed', '1');
    target.hash = window.location.hash;
    language.href = target.toString();
  }
  if (!data.base) {
    // The result page's secret is its fragment: another fragment is another link.
    window.addEventListener('hashchange', function () { window.location.reload(); });
  }
  if (!base) {
    show('gone');
  } else if (data.order) {
    resume(data.order);
  } else if (data.autostart === '1') {
    newCode({ plan_id: chosen('plan'), channel: chosen('channel') });
  } else {
    show('choose');
  }
})();
