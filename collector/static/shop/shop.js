/* The demo shop: every click becomes a Segment E-commerce event through cartpulse.js.
 * URL parameters: writeKey (default demo-write-key), host (the collector; default this origin), flushInterval and
 * flushAt (the tracker's batching). */
(function () {
  'use strict';

  var params = new URLSearchParams(location.search);
  var PRODUCTS = [
    {product_id: 'sku-boots', name: 'Trail boots', price: 89.0, colour: '#8d5524'},
    {product_id: 'sku-socks', name: 'Wool socks', price: 12.5, colour: '#c0392b'},
    {product_id: 'sku-cap', name: 'Sun cap', price: 19.0, colour: '#f39c12'},
    {product_id: 'sku-pack', name: 'Day pack', price: 54.0, colour: '#27ae60'}
  ];
  var cart = {}; // product_id -> quantity
  var cartId = localStorage.getItem('shop:cart_id') || 'cart-' + Date.now().toString(36);
  localStorage.setItem('shop:cart_id', cartId);

  cartpulse.load(params.get('writeKey') || 'demo-write-key', {
    host: params.get('host') || undefined,
    flushInterval: params.get('flushInterval') ? Number(params.get('flushInterval')) : undefined,
    flushAt: params.get('flushAt') ? Number(params.get('flushAt')) : undefined
  });

  function byId(id) { return document.getElementById(id); }
  function product(id) { return PRODUCTS.filter(function (p) { return p.product_id === id; })[0]; }
  function line(id) {
    var p = product(id);
    return {product_id: p.product_id, name: p.name, price: p.price, quantity: cart[id], url: location.href + '#' + id};
  }
  function lines() { return Object.keys(cart).map(line); }
  function total() { return lines().reduce(function (sum, l) { return sum + l.price * l.quantity; }, 0); }

  function renderProducts() {
    byId('products').innerHTML = '';
    PRODUCTS.forEach(function (p) {
      var li = document.createElement('li');
      li.innerHTML = '<div class="art"></div><h3></h3><p></p><button data-testid="add-' + p.product_id + '">Add to cart</button>';
      li.querySelector('.art').textContent = p.name.charAt(0);
      li.querySelector('.art').style.background = p.colour;
      li.querySelector('h3').textContent = p.name;
      li.querySelector('p').textContent = p.price.toFixed(2) + ' USD';
      li.querySelector('h3').addEventListener('click', function () {
        cartpulse.track('Product Viewed', {product_id: p.product_id, name: p.name, price: p.price, currency: 'USD'});
      });
      li.querySelector('button').addEventListener('click', function () { add(p.product_id); });
      byId('products').appendChild(li);
    });
  }

  function renderCart() {
    var list = byId('cart');
    list.innerHTML = '';
    Object.keys(cart).forEach(function (id) {
      var li = document.createElement('li');
      li.innerHTML = '<span></span><button data-testid="remove-' + id + '">Remove</button>';
      li.querySelector('span').textContent = product(id).name + ' \u00d7 ' + cart[id];
      li.querySelector('button').addEventListener('click', function () { removeLine(id); });
      list.appendChild(li);
    });
    byId('total').textContent = total().toFixed(2);
  }

  function add(id) {
    cart[id] = (cart[id] || 0) + 1;
    var p = product(id);
    cartpulse.track('Product Added', {
      cart_id: cartId, product_id: id, name: p.name, price: p.price, quantity: 1, currency: 'USD',
      url: location.href + '#' + id
    });
    renderCart();
  }

  function removeLine(id) {
    cartpulse.track('Product Removed', {cart_id: cartId, product_id: id, quantity: cart[id]});
    delete cart[id];
    renderCart();
  }

  byId('view-cart').addEventListener('click', function () {
    cartpulse.track('Cart Viewed', {cart_id: cartId, currency: 'USD', products: lines()});
  });

  byId('checkout').addEventListener('click', function () {
    if (!Object.keys(cart).length) { byId('message').textContent = 'Your cart is empty.'; return; }
    cartpulse.track('Checkout Started', {cart_id: cartId, currency: 'USD', value: total(), products: lines()});
    byId('place-order').disabled = false;
  });

  byId('place-order').addEventListener('click', function () {
    var orderId = 'order-' + Date.now().toString(36);
    cartpulse.track('Order Completed', {
      order_id: orderId, cart_id: cartId, currency: 'USD', total: total(), revenue: total(), products: lines()
    });
    cart = {};
    cartId = 'cart-' + Date.now().toString(36);
    localStorage.setItem('shop:cart_id', cartId);
    byId('place-order').disabled = true;
    byId('message').textContent = 'Thank you! Order ' + orderId + ' is placed.';
    renderCart();
  });

  byId('login').addEventListener('submit', function (event) {
    event.preventDefault();
    var email = byId('email').value.trim().toLowerCase();
    if (!email) return;
    cartpulse.identify(email, {email: email});
    byId('who').textContent = 'signed in as ' + email;
  });

  setInterval(function () {
    var d = cartpulse.debug();
    byId('tracker').textContent = 'queued ' + d.queued + ', sent ' + d.sent + ', failures ' + d.failures +
      (d.lastStatus === null ? '' : ', last answer ' + d.lastStatus);
  }, 250);

  if (cartpulse.userId()) byId('who').textContent = 'signed in as ' + cartpulse.userId();
  renderProducts();
  renderCart();
  cartpulse.page('Shop', {category: 'demo'});
})();
