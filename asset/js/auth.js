/* Login and register pages: both post `mobile` and `passwd` (register also takes a
 * nickname), keep the returned token in localStorage and open the chat. */
(function () {
  'use strict';
  var im = window.imchat;
  var CHAT_PAGE = '/chat/index.shtml';
  var MOBILE = /^\+?\d{5,19}$/;

  function showError(form, message) {
    var box = form.querySelector('.form-error');
    box.textContent = message;
    box.hidden = !message;
  }

  function bindForm(form, path) {
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      var fields = {};
      Array.prototype.forEach.call(form.elements, function (el) {
        if (el.name) fields[el.name] = el.value.trim();
      });
      fields.passwd = form.elements.passwd.value;  // a password keeps its spaces
      if (!MOBILE.test(fields.mobile)) {
        showError(form, im.t('err_mobile'));
        form.elements.mobile.focus();
        return;
      }
      if (fields.passwd.length < 6 && path === '/user/register') {
        showError(form, im.t('err_passwd'));
        form.elements.passwd.focus();
        return;
      }
      if (!fields.nickname) delete fields.nickname;
      var button = form.querySelector('button[type=submit]');
      button.disabled = true;
      showError(form, '');
      im.api(path, fields).then(function (reply) {
        im.session.set(reply.data);
        window.location.replace(CHAT_PAGE);
      }, function (error) {
        showError(form, error.message);
        button.disabled = false;
      });
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    var login = document.getElementById('login-form');
    var register = document.getElementById('register-form');
    if (login) bindForm(login, '/user/login');
    if (register) bindForm(register, '/user/register');
    var params = new URLSearchParams(window.location.search);
    if (params.get('expired') && login) showError(login, im.t('session_over'));
    // Already logged in on this browser: straight to the chat (it checks the token).
    else if (im.session.get()) window.location.replace(CHAT_PAGE);
  });
})();
