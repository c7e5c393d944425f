/* One renderer per media type, and the one-line summary of a message for lists. Every
 * string from the network goes in as text or as an attribute, and only this app's own
 * URLs (and the upload store's) are loaded. */
import {im, t, h, $, MEDIA, EMOJI_NAMES, avatar, displayName, linkify} from './util.js';
import {me, isFriend} from './state.js';
import {fileCard} from './richview.js';

export function summary(msg) {
  switch (Number(msg.media)) {
    case MEDIA.TEXT: return msg.content || '';
    case MEDIA.NEWS: return t('m_news') + ' ' + (msg.content || '');
    case MEDIA.VOICE: return t('m_voice') + ' ' + (msg.amount || 0) + '″';
    case MEDIA.IMAGE: return t('m_image');
    case MEDIA.REDPACKET: return t('m_redpacket') + ' ' + (msg.memo || '');
    case MEDIA.EMOJI: return EMOJI_NAMES[msg.content] || msg.content || t('m_emoji');
    case MEDIA.LINK: return t('m_link') + ' ' + (msg.url || '');
    case MEDIA.VIDEO: return t('m_video');
    case MEDIA.CONTACT: return t('m_contact') + ' ' + (msg.memo || '');
    case MEDIA.FILE: return t('m_file') + ' ' + (msg.content || '');
    case MEDIA.APP: return t('m_app');
    default: return t('m_unknown');
  }
}

function externalLink(url, label) {
  let href = im.linkUrl(url);
  if (!href) return h('span', {className: 'link-text', text: label || url || ''});
  return h('a', {href: href, target: '_blank', rel: 'noopener noreferrer nofollow',
                 className: 'link-text', text: label || url});
}

// The viewer remembers what opened it, so closing it gives the focus back.
let openedFrom = null;
function openLightbox(src, from) {
  openedFrom = from || document.activeElement;
  $('lightbox-img').src = src;
  $('lightbox').hidden = false;
  $('lightbox-close').focus();
}

export function closeLightbox() {
  if ($('lightbox').hidden) return;
  $('lightbox').hidden = true;
  if (openedFrom && openedFrom.isConnected) openedFrom.focus();
  openedFrom = null;
}

// `addFriend(id)`: what a contact card's "Add as friend" does.
export function bubble(msg, addFriend) {
  let media = Number(msg.media);
  let b = h('div', {className: 'bubble'});
  let src, href;
  switch (media) {
    case MEDIA.TEXT:
      b.classList.add('bubble-text');
      linkify(msg.content || '').forEach((node) => b.appendChild(node));
      break;
    case MEDIA.EMOJI:
      b.classList.add('bubble-emoji');
      b.textContent = EMOJI_NAMES[msg.content] || msg.content || '';
      break;
    case MEDIA.IMAGE:
      src = im.localUrl(msg.url);
      b.classList.add('bubble-media');
      if (src) {
        b.appendChild(h('button', {type: 'button', className: 'image-btn', 'aria-label': t('open_image'),
                                   onclick: function () { openLightbox(src, this); }}, [
          h('img', {className: 'msg-image', src: src, alt: t('m_image'), loading: 'lazy', onload: keepBottom})
        ]));
      } else {
        b.appendChild(externalLink(msg.url, t('m_image') + ' ' + (msg.url || '')));
      }
      break;
    case MEDIA.VOICE:
      b.classList.add('bubble-voice');
      src = im.localUrl(msg.url);
      let seconds = Math.max(0, Math.round(Number(msg.amount) || 0));
      if (src) {
        let audio = h('audio', {src: src, preload: 'none'});
        let play = h('button', {type: 'button', className: 'voice-play', 'aria-label': t('voice')}, [
          h('span', {className: 'voice-icon', text: '▶'}),
          h('span', {className: 'voice-wave', text: ')))'}),
          h('span', {className: 'voice-len', text: seconds + '″'})
        ]);
        play.style.minWidth = Math.min(220, 70 + seconds * 5) + 'px';
        play.addEventListener('click', function () {
          if (audio.paused) { audio.currentTime = 0; audio.play().catch(function () {}); }
          else audio.pause();
        });
        audio.addEventListener('play', function () { play.classList.add('playing'); play.firstChild.textContent = '❚❚'; });
        let stop = function () { play.classList.remove('playing'); play.firstChild.textContent = '▶'; };
        audio.addEventListener('pause', stop);
        audio.addEventListener('ended', stop);
        b.appendChild(play);
        b.appendChild(audio);
      } else {
        b.appendChild(externalLink(msg.url, t('m_voice') + ' ' + seconds + '″'));
      }
      break;
    case MEDIA.NEWS:
      b.classList.add('bubble-card', 'card-news');
      href = im.linkUrl(msg.url);
      let news = h(href ? 'a' : 'div', href ? {href: href, target: '_blank', rel: 'noopener noreferrer nofollow'} : {}, [
        h('div', {className: 'card-title', text: msg.content || t('m_news')}),
        h('div', {className: 'card-body'}, [
          h('div', {className: 'card-memo', text: msg.memo || ''}),
          im.localUrl(msg.pic) ? h('img', {className: 'card-pic', src: im.localUrl(msg.pic), alt: ''}) : null
        ])
      ]);
      b.appendChild(news);
      break;
    case MEDIA.REDPACKET:
      b.classList.add('bubble-card', 'card-redpacket');
      let amount = (Number(msg.amount) || 0) / 100;
      b.appendChild(h('div', {className: 'rp-top'}, [
        h('span', {className: 'rp-icon', text: '🧧'}),
        h('div', {}, [
          h('div', {className: 'card-title', text: msg.memo || t('redpacket_memo')}),
          h('div', {className: 'rp-amount', text: '¥' + amount.toFixed(2)})
        ])
      ]));
      b.appendChild(h('div', {className: 'rp-foot', text: t('redpacket')}));
      break;
    case MEDIA.LINK:
      b.classList.add('bubble-link');
      b.appendChild(h('span', {className: 'link-icon', text: '🔗 '}));
      b.appendChild(externalLink(msg.url, msg.url));
      break;
    case MEDIA.VIDEO:
      b.classList.add('bubble-media');
      src = im.localUrl(msg.url);
      if (src) {
        b.appendChild(h('video', {className: 'msg-video', src: src, controls: true, preload: 'metadata',
                                  poster: im.localUrl(msg.pic) || undefined, playsinline: true}));
      } else {
        b.appendChild(h('span', {className: 'link-icon', text: '🎬 '}));
        b.appendChild(externalLink(msg.url, t('m_video') + ' ' + (msg.url || '')));
      }
      break;
    case MEDIA.CONTACT:
      b.classList.add('bubble-card', 'card-contact');
      let cardId = Number(msg.content);
      let person = {id: cardId, nickname: msg.memo || ('#' + (msg.content || '')), avatar: msg.pic};
      b.appendChild(h('div', {className: 'contact-top'}, [
        avatar(person),
        h('div', {}, [
          h('div', {className: 'card-title', text: displayName(person)}),
          h('div', {className: 'card-memo', text: 'ID ' + (msg.content || '')})
        ])
      ]));
      let known = isFriend(cardId);
      let foot = h('div', {className: 'contact-foot'}, [h('span', {text: t('contact_card')})]);
      if (cardId > 0 && cardId !== Number(me.id) && !known) {
        foot.appendChild(h('button', {type: 'button', className: 'link', text: t('add_as_friend'),
                                      onclick: function () { addFriend(cardId); }}));
      }
      b.appendChild(foot);
      break;
    case MEDIA.FILE:
      b.classList.add('bubble-card', 'card-file');
      b.appendChild(fileCard(msg));
      break;
    default:
      b.classList.add('bubble-fallback');
      b.appendChild(h('div', {className: 'fallback-label',
                              text: media === MEDIA.APP ? t('app_message') : t('unsupported', {n: msg.media})}));
      b.appendChild(h('div', {className: 'fallback-body', text: msg.content || msg.url || ''}));
  }
  return b;
}

export function keepBottom() {
  let box = $('messages');
  if (box.scrollHeight - box.scrollTop - box.clientHeight < 400) box.scrollTop = box.scrollHeight;
}
