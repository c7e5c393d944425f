/* Media out: uploading an image, a voice note or a new avatar (progress announced as
 * 'upload'), and recording the voice note (announced as 'recording'). */
import {t, MEDIA} from './util.js';
import * as api from './api.js';
import {emit} from './events.js';
import {send} from './messages.js';
import {updateProfile, updateGroup} from './contacts.js';

const VOICE_MAX_S = 60;

function extension(name) {
  return ((name || '').match(/\.[A-Za-z0-9]{1,5}$/) || [''])[0].toLowerCase();
}

// Resolves with the stored file's URL; a refusal is said, an expired login ends.
function uploadFile(blob, filename, filetype) {
  emit('upload', 0);
  return api.upload(blob, filename, filetype, (pct) => emit('upload', pct)).then((url) => {
    emit('upload', null);
    return url;
  }, (error) => {
    emit('upload', null);
    if (error.status === 401) api.fail(error);
    else emit('notice', t('upload_failed', {why: error.message}));
    throw error;
  });
}

const ignore = () => {};

export function changeAvatar(file) {
  if (!file) return;
  const ext = extension(file.name);
  uploadFile(file, file.name || 'avatar' + ext, ext || undefined).then((url) => {
    return updateProfile({avatar: url}, t('avatar_saved'));
  }, ignore);
}

export function changeGroupIcon(c, file) {
  if (!file) return;
  const ext = extension(file.name);
  uploadFile(file, file.name || 'icon' + ext, ext || undefined).then((url) => {
    return updateGroup(c, {icon: url}, t('group_icon_saved'));
  }, ignore);
}

export function sendImage(file) {
  if (!file) return;
  const ext = extension(file.name);
  uploadFile(file, file.name || 'image' + ext, ext || undefined).then((url) => {
    send({media: MEDIA.IMAGE, url: url});
  }, ignore);
}

let recording = null;

export function startRecording() {
  if (!navigator.mediaDevices || !window.MediaRecorder) return emit('notice', t('mic_unsupported'));
  navigator.mediaDevices.getUserMedia({audio: true, video: false}).then((stream) => {
    const recorder = new MediaRecorder(stream);
    const chunks = [];
    recording = {recorder: recorder, stream: stream, started: Date.now(), cancelled: false, timer: null};
    recorder.ondataavailable = (e) => { if (e.data && e.data.size) chunks.push(e.data); };
    recorder.onstop = () => {
      const rec = recording;
      recording = null;
      clearInterval(rec.timer);
      stream.getTracks().forEach((track) => track.stop());
      emit('recording', null);
      if (rec.cancelled) return;
      const seconds = Math.max(1, Math.round((Date.now() - rec.started) / 1000));
      const type = recorder.mimeType || (chunks[0] && chunks[0].type) || 'audio/webm';
      const ext = type.indexOf('ogg') >= 0 ? '.ogg' : type.indexOf('mp4') >= 0 ? '.m4a' : '.webm';
      const blob = new Blob(chunks, {type: type.split(';')[0]});
      if (!blob.size) return emit('notice', t('too_short'));
      uploadFile(blob, 'voice' + ext, ext).then((url) => {
        send({media: MEDIA.VOICE, url: url, amount: seconds});
      }, ignore);
    };
    recorder.start();
    emit('recording', {seconds: 0});
    recording.timer = setInterval(() => {
      const s = Math.round((Date.now() - recording.started) / 1000);
      emit('recording', {seconds: s});
      if (s >= VOICE_MAX_S) stopRecording(false);
    }, 250);
  }, (error) => {
    emit('notice', t('mic_failed', {why: error && (error.message || error.name) || ''}));
  });
}

export function stopRecording(cancel) {
  if (!recording) return;
  recording.cancelled = cancel;
  if (recording.recorder.state !== 'inactive') recording.recorder.stop();
}
