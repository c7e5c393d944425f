/* The end of a login: logging out, or learning that the token is no longer good. */
import {im} from './util.js';
import * as conn from './conn.js';
import * as api from './api.js';

export function endSession() {
  conn.stop();
  im.session.clear();
  window.location.replace('/user/login.shtml?expired=1');
}

export function logout() {
  conn.stop();
  const done = () => {
    im.session.clear();
    window.location.replace('/user/login.shtml');
  };
  api.logout().then(done, done);
}
