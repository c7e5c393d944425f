/* Reporting a message or a person to the operator (issue 22): the server keeps the
 * message as it is now, even if it is recalled later. The reason is asked first
 * (safetyview.js). */
import {t} from './util.js';
import * as api from './api.js';
import {emit} from './events.js';

// {msgid} or {dstid: a user}, with {reason, memo}; resolves true once the server has it.
export function report(fields) {
  return api.report(fields).then(() => {
    emit('notice', t('report_sent'));
    return true;
  }, (error) => {
    api.fail(error);
    return false;
  });
}
