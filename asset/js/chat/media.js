/* Media: uploading a file with a progress bar, sending an image, recording and
 * sending a voice note, and a new avatar. */
import {im, t, $, MEDIA, toast} from './util.js';
import {state, me, token, setMe} from './state.js';
import {send} from './messages.js';
import {renderMe, renderMessages} from './views.js';
import {endSession, fail} from './session.js';

const VOICE_MAX_S = 60;

function uploadFile(blob, filename, filetype) {
  return new Promise(function (resolve, reject) {
    let form = new FormData();
    form.append('file', blob, filename);
    if (filetype) form.append('filetype', filetype);
    let xhr = new XMLHttpRequest();
    xhr.open('POST', '/attach/upload', true);
    xhr.setRequestHeader('Authorization', 'Bearer ' + token);
    let bar = $('upload-bar');
    bar.hidden = false;
    let progress = function (pct) {
      $('upload-progress').value = pct;
      $('upload-pct').textContent = pct + '%';
    };
    progress(0);
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) progress(Math.round(e.loaded * 100 / e.total));
    };
    xhr.onload = function () {
      bar.hidden = true;
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 200 && data && data.code === 0 && data.data) return resolve(data.data);
      if (xhr.status === 401) return endSession();
      reject(new im.ApiError((data && data.msg) || ('HTTP ' + xhr.status), xhr.status));
    };
    xhr.onerror = function () {
      bar.hidden = true;
      reject(new im.ApiError(t('err_network'), 0));
    };
    xhr.send(form);
  });
}

export function updateProfile(fields, message) {
  return im.api('/user/update', fields).then(function (reply) {
    const user = reply.data;
    user.mobile = user.mobile || me.mobile;
    setMe(user);
    im.session.updateUser(user);
    renderMe();
    if (state.open) renderMessages(false);
    toast(message);
  }, fail);
}

export function changeAvatar(file) {
  if (!file) return;
  let ext = (file.name.match(/\.[A-Za-z0-9]{1,5}$/) || [''])[0].toLowerCase();
  uploadFile(file, file.name || 'avatar' + ext, ext || undefined).then(function (url) {
    return updateProfile({avatar: url}, t('avatar_saved'));
  }, function (error) { toast(t('upload_failed', {why: error.message})); });
}

export function sendImage(file) {
  if (!file) return;
  let ext = (file.name.match(/\.[A-Za-z0-9]{1,5}$/) || [''])[0].toLowerCase();
  uploadFile(file, file.name || 'image' + ext, ext || undefined).then(function (url) {
    send({media: MEDIA.IMAGE, url: url});
  }, function (error) { toast(t('upload_failed', {why: error.message})); });
}

let recording = null;

export function startRecording() {
  if (!navigator.mediaDevices || !window.MediaRecorder) return toast(t('mic_unsupported'));
  navigator.mediaDevices.getUserMedia({audio: true, video: false}).then(function (stream) {
    let recorder = new MediaRecorder(stream);
    let chunks = [];
    recording = {recorder: recorder, stream: stream, started: Date.now(), cancelled: false, timer: null};
    recorder.ondataavailable = function (e) { if (e.data && e.data.size) chunks.push(e.data); };
    recorder.onstop = function () {
      let rec = recording;
      recording = null;
      clearInterval(rec.timer);
      stream.getTracks().forEach(function (track) { track.stop(); });
      $('recorder').hidden = true;
      $('composer').hidden = false;
      if (rec.cancelled) return;
      let seconds = Math.max(1, Math.round((Date.now() - rec.started) / 1000));
      let type = recorder.mimeType || (chunks[0] && chunks[0].type) || 'audio/webm';
      let ext = type.indexOf('ogg') >= 0 ? '.ogg' : type.indexOf('mp4') >= 0 ? '.m4a' : '.webm';
      let blob = new Blob(chunks, {type: type.split(';')[0]});
      if (!blob.size) return toast(t('too_short'));
      uploadFile(blob, 'voice' + ext, ext).then(function (url) {
        send({media: MEDIA.VOICE, url: url, amount: seconds});
      }, function (error) { toast(t('upload_failed', {why: error.message})); });
    };
    recorder.start();
    $('composer').hidden = true;
    $('emoji-panel').hidden = true;
    $('recorder').hidden = false;
    $('rec-time').textContent = '0″';
    recording.timer = setInterval(function () {
      let s = Math.round((Date.now() - recording.started) / 1000);
      $('rec-time').textContent = s + '″';
      if (s >= VOICE_MAX_S) stopRecording(false);
    }, 250);
  }, function (error) {
    toast(t('mic_failed', {why: error && (error.message || error.name) || ''}));
  });
}

export function stopRecording(cancel) {
  if (!recording) return;
  recording.cancelled = cancel;
  if (recording.recorder.state !== 'inactive') recording.recorder.stop();
}
