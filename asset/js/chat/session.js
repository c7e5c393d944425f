/* The end of a login: logging out, or learning that the token is no longer good. */
import {im, toast} from './util.js';
import * as conn from './conn.js';

export function endSession() {
  conn.stop();
  im.session.clear();
  window.location.replace('/user/login.shtml?expired=1');
}

// What every failed API call does: back to login if the token is over, else say why.
export function fail(error) {
  if (error && error.status === 401) return endSession();
  toast(error && error.message ? error.message : String(error));
}

export function logout() {
  conn.stop();
  const done = () => {
    im.session.clear();
    window.location.replace('/user/login.shtml');
  };
  im.api('/user/logout', {}).then(done, done);
}
