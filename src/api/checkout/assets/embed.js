// payledger checkout, embedded: include this script on the merchant's page, then call
//   PayledgerCheckout.open(checkoutUrl, { onSuccess(orderId) {}, onCancel() {} })
// with the `url` of a checkout session. It opens the hosted page in a modal frame and
// reports success or cancel from the page's postMessage; only messages from the
// checkout's own origin are believed.
'use strict';

(function () {
  function open(url, callbacks) {
    const handlers = callbacks || {};
    const target = new URL(url, window.location.href);
    target.searchParams.set('embed', '1');
    const overlay = document.createElement('div');
    overlay.setAttribute('role', 'dialog');
    overlay.setAttribute('aria-modal', 'true');
    Object.assign(overlay.style, {
      position: 'fixed', inset: '0', background: 'rgba(0,0,0,0.45)', zIndex: '2147483647',
      display: 'flex', alignItems: 'center', justifyContent: 'center'
    });
    const frame = document.createElement('iframe');
    frame.src = target.toString();
    frame.title = 'Checkout';
    Object.assign(frame.style, {
      width: 'min(440px, 100vw)', height: 'min(680px, 100vh)', border: '0',
      borderRadius: '12px', background: '#fff'
    });
    const closer = document.createElement('button');
    closer.type = 'button';
    closer.textContent = '\u00d7';
    closer.setAttribute('aria-label', 'Close');
    Object.assign(closer.style, {
      position: 'absolute', top: '8px', right: '8px', width: '40px', height: '40px',
      border: '0', borderRadius: '20px', background: '#fff', fontSize: '24px', cursor: 'pointer'
    });
    overlay.appendChild(frame);
    overlay.appendChild(closer);

    function close() {
      window.removeEventListener('message', onMessage);
      overlay.remove();
    }
    function onMessage(event) {
      if (event.origin !== target.origin || event.source !== frame.contentWindow) {
        return;
      }
      const message = event.data || {};
      if (message.source !== 'payledger-checkout') {
        return;
      }
      if (message.event === 'success') {
        close();
        if (handlers.onSuccess) {
          handlers.onSuccess(message.order_id);
        }
      } else if (message.event === 'cancel') {
        close();
        if (handlers.onCancel) {
          handlers.onCancel();
        }
      }
    }
    window.addEventListener('message', onMessage);
    overlay.addEventListener('click', function (event) {
      if (event.target === overlay || event.target === closer) {
        close();
        if (handlers.onCancel) {
          handlers.onCancel();
        }
      }
    });
    document.body.appendChild(overlay);
    return { close: close };
  }

  window.PayledgerCheckout = { open: open };
})();
