/* imchat web client: what every page shares. Language, the login session kept in
 * localStorage, the JSON API, and a DOM builder that only ever sets text (nothing a
 * user typed is parsed as HTML). No library, nothing loaded from outside the app. */
(function () {
  'use strict';

  var I18N = {
    zh: {
      tagline: '和好友、群组即时聊天',
      mobile: '手机号', passwd: '密码', nickname: '昵称',
      mobile_hint: '请输入手机号', passwd_hint: '请输入密码',
      passwd_new_hint: '至少 6 位', nickname_hint: '给自己起个名字',
      login: '登录', register: '注册', no_account: '还没有账号？', register_now: '立即注册',
      have_account: '已有账号？', login_now: '去登录',
      err_mobile: '手机号应为 5 到 19 位数字', err_passwd: '密码至少 6 位',
      err_network: '网络错误，请稍后重试',
      tab_friends: '好友', tab_groups: '群组', tab_me: '我',
      add: '添加', by_mobile: '手机号', by_id: 'ID', friend_hint: '手机号或 ID',
      add_friend: '加好友', no_friends: '还没有好友，点右上角的 + 添加。',
      group_name_hint: '新群的名字', create_group: '建群', group_id_hint: '群 ID',
      join_group: '加入', no_groups: '还没有群，点右上角的 + 新建或加入。',
      my_id: 'ID', save_nickname: '保存昵称', logout: '退出登录',
      pick_conversation: '选择一位好友或一个群开始聊天。',
      back: '返回', members: '群成员', group_id: '群 ID',
      uploading: '上传中', recording: '录音中', rec_send: '停止并发送', cancel: '取消',
      emoji: '表情', image: '图片', voice: '语音', type_message: '说点什么…', send: '发送',
      sending: '发送中…', sent: '已发送', not_sent: '未发送：{why}',
      connecting: '正在连接…',
      reconnecting: '连接断开，{s} 秒后重连…', online: '在线',
      replaced: '你在别处打开的连接太多，此页已断开；刷新页面可重新连接',
      friend_added: '已添加好友', group_created: '已创建群「{name}」', group_joined: '已加入群',
      nickname_saved: '昵称已保存', load_older: '上滑加载更早的消息',
      loading: '加载中…', no_more: '没有更早的消息了',
      m_image: '[图片]', m_voice: '[语音]', m_news: '[图文]', m_redpacket: '[红包]',
      m_emoji: '[表情]', m_link: '[链接]', m_video: '[视频]', m_contact: '[名片]',
      m_app: '[应用消息]', m_unknown: '[不支持的消息]',
      redpacket: '红包', redpacket_memo: '恭喜发财，大吉大利',
      contact_card: '个人名片', add_as_friend: '加为好友', open_link: '打开链接',
      app_message: '应用消息', unsupported: '不支持的消息类型 {n}',
      upload_failed: '上传失败：{why}', mic_failed: '无法录音：{why}',
      mic_unsupported: '这个浏览器不支持录音', too_short: '录音太短',
      session_over: '登录已失效，请重新登录', you: '我', members_count: '{n} 位成员',
      lang_other: 'English', today: '今天', change_avatar: '换头像', avatar_saved: '头像已更新',
      tab_chats: '消息', no_chats: '还没有聊天。在好友或群组里选一个开始吧。',
      read: '已读', typing: '{name} 正在输入…', offline: '离线', profile: '资料',
      recall: '撤回', recalled: '消息已撤回', recalled_by_me: '你撤回了一条消息',
      recalled_by: '{name} 撤回了一条消息', recall_too_late: '超过 {s} 秒的消息不能撤回',
      unfriend: '删除好友', unfriend_confirm: '删除好友「{name}」？聊天记录会保留，但你们将不能再互发消息。',
      unfriended: '已删除好友', leave_group: '退出群聊',
      leave_confirm: '退出群「{name}」？', left_group: '已退出群',
      kick: '移出', kick_confirm: '把「{name}」移出群？', kicked: '已将 {name} 移出群',
      transfer: '转让群主', transfer_confirm: '把群主转让给「{name}」？你将成为普通成员。',
      transferred: '{name} 现在是群主', owner: '群主', ok: '确定',
      reply: '回复', react: '表态', edit: '编辑', forward: '转发',
      edited: '已编辑', edit_prompt: '修改消息', edit_too_late: '超过时限的消息不能编辑',
      replying_to: '回复 {name}：', forward_to: '转发给…', forwarded: '转发的消息',
      file: '文件', m_file: '[文件]', download: '下载', attach_file: '发送文件',
      mention_everyone: '所有人', mentioned_me: '[有人@我]', more_emoji: '更多表情',
      quote_missing: '原消息不在已加载的记录里', reactions: '表态',
      draft: '[草稿]', draft_label: '草稿：{text}',
      messages_label: '消息记录', message_input: '输入消息', add_friend_by: '查找方式',
      friend_hint_short: '手机号或 ID', group_name_label: '新群名称', group_id_label: '要加入的群 ID',
      copy: '复制', copied: '已复制', msg_menu: '消息操作', more: '更多',
      new_message_from: '{name} 发来新消息：{text}', new_messages_in: '{title} 有 {n} 条新消息',
      first_run_title: '先加一位好友', first_run_body: '在「好友」页点 +，输入对方的手机号或 ID。把你的信息告诉朋友，他们也能加你：',
      first_run_add: '去加好友', my_mobile: '手机号',
      password_change: '修改密码', passwd_current: '当前密码', passwd_new: '新密码',
      password_changed: '密码已修改', save: '保存', bio: '个性签名', bio_hint: '介绍一下自己',
      bio_saved: '签名已保存', theme: '外观', theme_system: '跟随系统', theme_light: '浅色',
      theme_dark: '深色', language: '语言',
      rename_group: '群名称', rename: '改名', group_renamed: '群名称已修改',
      group_icon: '换群头像', group_icon_saved: '群头像已更新',
      owner_leave: '你是这个群的群主：先在下面选一位成员转让群主，然后才能退出。',
      choose_owner: '选新群主', close: '关闭', image_viewer: '查看图片',
      open_image: '查看大图', connection: '连接状态', main_region: '聊天',
      err_field: '请检查「{field}」', field_name: '群名称', field_dstid: 'ID', field_newpasswd: '新密码',
      field_memo: '签名', field_target: 'ID',
      friend_requests: '好友申请', greeting_hint: '打个招呼（可不填）', request_sent: '好友申请已发送',
      request_came: '{name} 想加你为好友', accept: '接受', decline: '拒绝',
      decline_confirm: '拒绝「{name}」的好友申请？', request_accepted: '已成为好友',
      request_declined: '已拒绝', request_waiting: '等待对方确认', requests_count: '{n} 个好友申请',
      block: '拉黑', unblock: '取消拉黑', blocked_people: '黑名单',
      block_confirm: '拉黑「{name}」？对方将不能给你发消息、加你为好友或看到你是否在线，你们的好友关系也会解除。对方不会收到通知。',
      unblock_confirm: '把「{name}」移出黑名单？好友关系不会恢复。',
      blocked_done: '已拉黑', unblocked_done: '已移出黑名单', notifications: '通知', sound_hidden: '页面隐藏时播放提示音',
      mute: '免打扰', muted: '已开启免打扰', mute_question: '「{name}」免打扰多久？',
      mute_1h: '1 小时', mute_8h: '8 小时', mute_week: '1 周', mute_always: '一直',
      unmute: '取消免打扰', muted_done: '已开启免打扰', unmuted_done: '已取消免打扰',
      report: '举报', report_user: '举报此人', report_message: '举报这条消息',
      report_user_title: '举报「{name}」', report_reason: '举报原因',
      reason_spam: '垃圾广告', reason_abuse: '骚扰或辱骂', reason_illegal: '违法内容', reason_other: '其他',
      report_memo_hint: '补充说明（可不填）', report_send: '提交举报',
      report_sent: '举报已提交，谢谢。管理员会尽快处理。',
      join_rule: '加群方式', join_open: '知道群 ID 即可加入', join_approval: '需要管理员同意',
      join_invite: '只能受邀加入', announce_only: '仅管理员可发言', rules_saved: '群设置已保存',
      admin: '管理员', make_admin: '设为管理员', remove_admin: '取消管理员',
      made_admin: '{name} 现在是管理员', removed_admin: '{name} 不再是管理员',
      mute_member: '禁言', mute_member_question: '禁言「{name}」多久？', unmute_member: '解除禁言',
      member_muted: '已禁言 {name}', muted_mark: '已禁言', member_unmuted: '已解除 {name} 的禁言',
      join_requests: '入群申请', approve: '同意', reject_confirm: '拒绝「{name}」的入群申请？',
      join_approved_by_me: '已同意 {name} 入群', join_rejected_by_me: '已拒绝',
      join_requested: '已申请加入，等待管理员同意', join_request_came: '{name} 申请加入「{group}」',
      join_approved: '你已加入「{group}」', join_rejected: '加入「{group}」的申请未获同意',
      invite: '邀请', invite_friend: '邀请好友入群', invited_done: '已邀请 {name}',
      invitations: '群邀请', invitation_from: '{name} 邀请你加入', invitation_came: '{name} 邀请你加入「{group}」',
      join_invited: '加入', dismiss: '忽略', role_now_admin: '你已成为「{group}」的管理员',
      role_now_member: '你不再是「{group}」的管理员', role_now_owner: '你现在是「{group}」的群主',
      you_muted: '你在「{group}」被禁言至 {until}', you_muted_forever: '你在「{group}」被禁言',
      you_unmuted: '你在「{group}」的禁言已解除', you_kicked: '你已被移出「{group}」',
      muted_until: '禁言至 {until}'
    },
    en: {
      tagline: 'Chat with friends and groups',
      mobile: 'Mobile', passwd: 'Password', nickname: 'Nickname',
      mobile_hint: 'Your mobile number', passwd_hint: 'Your password',
      passwd_new_hint: 'At least 6 characters', nickname_hint: 'What should people call you?',
      login: 'Log in', register: 'Register', no_account: 'No account yet?',
      register_now: 'Register', have_account: 'Already registered?', login_now: 'Log in',
      err_mobile: 'The mobile number must be 5 to 19 digits',
      err_passwd: 'The password needs at least 6 characters',
      err_network: 'Network error, please try again',
      tab_friends: 'Friends', tab_groups: 'Groups', tab_me: 'Me',
      add: 'Add', by_mobile: 'Mobile', by_id: 'ID', friend_hint: "Friend's mobile or ID",
      add_friend: 'Add', no_friends: 'No friends yet. Tap + to add one.',
      group_name_hint: 'New group name', create_group: 'Create', group_id_hint: 'Group ID',
      join_group: 'Join', no_groups: 'No groups yet. Tap + to create or join one.',
      my_id: 'ID', save_nickname: 'Save nickname', logout: 'Log out',
      pick_conversation: 'Pick a friend or a group to start chatting.',
      back: 'Back', members: 'Members', group_id: 'Group ID',
      uploading: 'Uploading', recording: 'Recording', rec_send: 'Stop and send',
      cancel: 'Cancel', emoji: 'Emoji', image: 'Image', voice: 'Voice note',
      type_message: 'Type a message…', send: 'Send',
      sending: 'Sending…', sent: 'Sent', not_sent: 'Not sent: {why}',
      connecting: 'Connecting…',
      reconnecting: 'Disconnected, reconnecting in {s} s…', online: 'online',
      replaced: 'Too many connections open elsewhere: this page was disconnected. Reload to connect again',
      friend_added: 'Friend added', group_created: 'Group “{name}” created',
      group_joined: 'Joined the group', nickname_saved: 'Nickname saved',
      load_older: 'Scroll up for older messages', loading: 'Loading…',
      no_more: 'No older messages',
      m_image: '[Image]', m_voice: '[Voice]', m_news: '[News]', m_redpacket: '[Red packet]',
      m_emoji: '[Emoji]', m_link: '[Link]', m_video: '[Video]', m_contact: '[Contact]',
      m_app: '[App message]', m_unknown: '[Unsupported message]',
      redpacket: 'Red packet', redpacket_memo: 'Best wishes!',
      contact_card: 'Contact card', add_as_friend: 'Add as friend', open_link: 'Open link',
      app_message: 'App message', unsupported: 'Unsupported message type {n}',
      upload_failed: 'Upload failed: {why}', mic_failed: 'Cannot record: {why}',
      mic_unsupported: 'This browser cannot record audio', too_short: 'Too short to send',
      session_over: 'Your session has ended, please log in again', you: 'Me',
      members_count: '{n} members', lang_other: '中文', today: 'Today',
      change_avatar: 'Change', avatar_saved: 'Avatar updated',
      tab_chats: 'Chats', no_chats: 'No chats yet. Pick a friend or a group to start one.',
      read: 'Read', typing: '{name} is typing…', offline: 'offline', profile: 'Profile',
      recall: 'Recall', recalled: 'Message recalled', recalled_by_me: 'You recalled a message',
      recalled_by: '{name} recalled a message',
      recall_too_late: 'Messages older than {s} s cannot be recalled',
      unfriend: 'Remove friend',
      unfriend_confirm: 'Remove “{name}” from your friends? The history stays, but neither of you can send to the other.',
      unfriended: 'Friend removed', leave_group: 'Leave the group',
      leave_confirm: 'Leave the group “{name}”?', left_group: 'You left the group',
      kick: 'Remove', kick_confirm: 'Remove “{name}” from the group?',
      kicked: '{name} was removed from the group', transfer: 'Make owner',
      transfer_confirm: 'Make “{name}” the owner of the group? You stay as a member.',
      transferred: '{name} is now the owner', owner: 'Owner', ok: 'OK',
      reply: 'Reply', react: 'React', edit: 'Edit', forward: 'Forward',
      edited: 'edited', edit_prompt: 'Edit the message',
      edit_too_late: 'This message can no longer be edited', replying_to: 'Replying to {name}: ',
      forward_to: 'Forward to…', forwarded: 'Forwarded', file: 'File', m_file: '[File]',
      download: 'Download', attach_file: 'Send a file', mention_everyone: 'Everyone',
      mentioned_me: '[You were mentioned]', more_emoji: 'More emoji',
      quote_missing: 'The quoted message is not among those loaded', reactions: 'Reactions',
      draft: '[Draft]', draft_label: 'Draft: {text}',
      messages_label: 'Messages', message_input: 'Message', add_friend_by: 'Find by',
      friend_hint_short: 'Mobile or ID', group_name_label: 'New group name', group_id_label: 'ID of a group to join',
      copy: 'Copy', copied: 'Copied', msg_menu: 'Message actions', more: 'More',
      new_message_from: 'New message from {name}: {text}', new_messages_in: '{n} new messages in {title}',
      first_run_title: 'Start by adding a friend',
      first_run_body: 'On the Friends tab, press + and enter their mobile or ID. Share yours so friends can add you:',
      first_run_add: 'Add a friend', my_mobile: 'Mobile',
      password_change: 'Change password', passwd_current: 'Current password', passwd_new: 'New password',
      password_changed: 'Password changed', save: 'Save', bio: 'Bio', bio_hint: 'A line about you',
      bio_saved: 'Bio saved', theme: 'Appearance', theme_system: 'System', theme_light: 'Light',
      theme_dark: 'Dark', language: 'Language',
      rename_group: 'Group name', rename: 'Rename', group_renamed: 'Group renamed',
      group_icon: 'Change group picture', group_icon_saved: 'Group picture updated',
      owner_leave: 'You own this group: make another member the owner below first, then you can leave.',
      choose_owner: 'Choose a new owner', close: 'Close', image_viewer: 'Image',
      open_image: 'Open the image', connection: 'Connection', main_region: 'Chat',
      err_field: 'Please check “{field}”', field_name: 'group name', field_dstid: 'ID',
      field_newpasswd: 'new password', field_memo: 'bio', field_target: 'ID',
      friend_requests: 'Friend requests', greeting_hint: 'Say hello (optional)',
      request_sent: 'Friend request sent', request_came: '{name} wants to be your friend',
      accept: 'Accept', decline: 'Decline', decline_confirm: 'Decline the friend request of “{name}”?',
      request_accepted: 'You are friends now', request_declined: 'Declined',
      request_waiting: 'Waiting for an answer', requests_count: '{n} friend requests',
      block: 'Block', unblock: 'Unblock', blocked_people: 'Blocked',
      block_confirm: 'Block “{name}”? They can no longer message you, ask to be your friend or see when you are online, and your friendship ends. They are not told.',
      unblock_confirm: 'Unblock “{name}”? The friendship does not come back.',
      blocked_done: 'Blocked', unblocked_done: 'Unblocked',
      notifications: 'Notifications', sound_hidden: 'Sound while imchat is hidden',
      mute: 'Mute', muted: 'Muted', mute_question: 'Mute “{name}” for how long?',
      mute_1h: '1 hour', mute_8h: '8 hours', mute_week: '1 week', mute_always: 'Always',
      unmute: 'Unmute', muted_done: 'Muted', unmuted_done: 'Unmuted',
      report: 'Report', report_user: 'Report this person', report_message: 'Report this message',
      report_user_title: 'Report “{name}”', report_reason: 'Why are you reporting it?',
      reason_spam: 'Spam', reason_abuse: 'Harassment or abuse', reason_illegal: 'Illegal content',
      reason_other: 'Something else', report_memo_hint: 'Tell us more (optional)',
      report_send: 'Send report', report_sent: 'Report sent. Thank you: an operator will look at it.',
      join_rule: 'Who may join', join_open: 'Anyone with the group ID', join_approval: 'Those an admin approves',
      join_invite: 'Only those invited', announce_only: 'Only admins can post', rules_saved: 'Group settings saved',
      admin: 'Admin', make_admin: 'Make admin', remove_admin: 'Remove as admin',
      made_admin: '{name} is an admin now', removed_admin: '{name} is no longer an admin',
      mute_member: 'Mute', mute_member_question: 'Mute “{name}” in the group for how long?',
      unmute_member: 'Unmute', member_muted: '{name} is muted', muted_mark: 'muted', member_unmuted: '{name} may post again',
      join_requests: 'Asking to join', approve: 'Approve', reject_confirm: 'Decline the request of “{name}” to join?',
      join_approved_by_me: '{name} has joined', join_rejected_by_me: 'Declined',
      join_requested: 'Request sent: an admin of the group will answer',
      join_request_came: '{name} asks to join “{group}”',
      join_approved: 'You have joined “{group}”', join_rejected: 'Your request to join “{group}” was declined',
      invite: 'Invite', invite_friend: 'A friend to invite', invited_done: '{name} is invited',
      invitations: 'Group invitations', invitation_from: '{name} invites you',
      invitation_came: '{name} invites you to “{group}”', join_invited: 'Join', dismiss: 'Dismiss',
      role_now_admin: 'You are an admin of “{group}” now', role_now_member: 'You are no longer an admin of “{group}”',
      role_now_owner: 'You own “{group}” now',
      you_muted: 'An admin muted you in “{group}” until {until}', you_muted_forever: 'An admin muted you in “{group}”',
      you_unmuted: 'You may post in “{group}” again', you_kicked: 'You were removed from “{group}”',
      muted_until: 'Muted until {until}'
    }
  };

  // The server's refusals in the person's language, by their stable `reason`
  // (docs/protocol.md, "Error reasons"); an unknown reason falls back on its status's.
  var REASONS = {
    zh: {
      bad_request: '请求有误', invalid: '填写的内容有误', unauthorized: '请先登录',
      forbidden: '没有权限这样做', not_found: '找不到', conflict: '与已有的内容冲突',
      too_large: '文件太大', unsupported_media_type: '不支持这种文件',
      rate_limited: '操作太频繁，请稍后再试', unavailable: '服务暂时不可用，请稍后再试',
      'unavailable.database': '服务暂时不可用，请稍后再试', 'unavailable.upstream': '文件存储暂时不可用',
      busy: '服务器忙，请稍后再试', internal: '服务器出错了，请稍后再试',
      'not_found.route': '找不到', method_not_allowed: '请求有误', websocket_only: '请求有误',
      'auth.token_missing': '请先登录', 'auth.token_invalid': '登录已失效，请重新登录',
      'auth.token_expired': '登录已过期，请重新登录', 'auth.wrong_password': '手机号或密码不对',
      'auth.not_you': '没有权限这样做', 'auth.cross_site': '请求来自其他网站，已拒绝',
      'conflict.mobile_registered': '这个手机号已经注册过了',
      'not_found.user': '没有这个用户', 'not_found.community': '没有这个群',
      'not_found.file': '文件不存在', 'contact.self': '不能加自己为好友',
      'contact.already_friends': '你们已经是好友了', 'contact.not_friends': '对方不是你的好友',
      'community.too_many_owned': '拥有的群已达上限', 'community.owner_must_transfer': '你是群主：先把群转让给其他成员，再退出',
      'community.kick_self': '不能把自己移出群', 'community.already_owner': '你已经是群主了',
      'community.owner_only': '只有群主可以这样做', 'community.not_member': '不是这个群的成员',
      'community.muted': '你已被禁言，暂时不能在这个群发言', 'community.announce_only': '这个群只有管理员可以发言',
      'community.invite_only': '这个群只能受邀加入', 'community.admin_only': '只有群主或管理员可以这样做',
      'community.outranked': '不能对群主或其他管理员这样做', 'community.too_many_admins': '管理员人数已达上限',
      'community.no_request': '没有这条入群申请', 'community.joins_per_hour': '加群太频繁，请稍后再试',
      'upload.quota': '今天的上传额度已用完', 'upload.not_multipart': '上传失败',
      'upload.no_file': '没有选择文件', 'upload.not_a_file': '没有选择文件',
      'rate_limited.login': '登录尝试太多，请稍后再试', 'rate_limited.register': '注册太频繁，请稍后再试',
      // Refusals of frames over the WebSocket (acks).
      'rate_limited.message': '发得太快了，请稍后再发', 'rate_limited.reaction': '操作太频繁，请稍后再试',
      'unavailable.shutting_down': '服务器正在重启，重新连接后再发',
      'recall.not_found': '找不到这条消息', 'recall.not_yours': '只能撤回自己的消息',
      'recall.recalled': '这条消息已经撤回了', 'recall.too_old': '超过时限的消息不能撤回',
      'edit.not_found': '找不到这条消息', 'edit.not_yours': '只能编辑自己的消息',
      'edit.recalled': '撤回的消息不能编辑', 'edit.not_text': '只有文字消息可以编辑',
      'edit.too_late': '超过时限的消息不能编辑',
      'reaction.not_found': '找不到这条消息', 'reaction.recalled': '撤回的消息不能回应',
      'reaction.too_many': '这条消息的表情回应太多了',
      'reply.not_found': '找不到要回复的消息', 'forward.not_found': '找不到要转发的消息',
      'forward.recalled': '撤回的消息不能转发', 'mention.everyone_not_allowed': '只有群主和管理员可以@所有人'
    },
    en: {
      bad_request: 'The request was not understood', invalid: 'Something you entered is not right',
      unauthorized: 'Please log in', forbidden: 'You are not allowed to do that',
      not_found: 'Not found', conflict: 'That clashes with something that exists',
      too_large: 'The file is too large', unsupported_media_type: 'That kind of file is not accepted',
      rate_limited: 'Too many attempts, please wait a moment', unavailable: 'The service is unavailable, please try again shortly',
      'unavailable.database': 'The service is unavailable, please try again shortly',
      'unavailable.upstream': 'File storage is unavailable', busy: 'The server is busy, please try again shortly',
      internal: 'Something went wrong on the server, please try again',
      'not_found.route': 'Not found', method_not_allowed: 'The request was not understood',
      websocket_only: 'The request was not understood',
      'auth.token_missing': 'Please log in', 'auth.token_invalid': 'Your session has ended, please log in again',
      'auth.token_expired': 'Your session has expired, please log in again',
      'auth.wrong_password': 'Wrong mobile number or password', 'auth.not_you': 'You are not allowed to do that',
      'auth.cross_site': 'Refused: the request came from another site',
      'conflict.mobile_registered': 'That mobile number already has an account',
      'not_found.user': 'No such user', 'not_found.community': 'No such group',
      'not_found.file': 'No such file', 'contact.self': 'You cannot add yourself',
      'contact.already_friends': 'You are already friends', 'contact.not_friends': 'You are not friends',
      'community.too_many_owned': 'You own the most groups allowed',
      'community.owner_must_transfer': 'You own this group: make another member the owner before leaving',
      'community.kick_self': 'You cannot remove yourself', 'community.already_owner': 'You already own the group',
      'community.owner_only': 'Only the owner can do that', 'community.not_member': 'Not a member of the group',
      'community.muted': 'An admin muted you in this group for now', 'community.announce_only': 'Only the admins post in this group',
      'community.invite_only': 'This group is joined by invitation only', 'community.admin_only': 'Only the owner or an admin can do that',
      'community.outranked': 'You cannot do that to the owner or another admin', 'community.too_many_admins': 'The group has the most admins allowed',
      'community.no_request': 'There is no such request to join', 'community.joins_per_hour': 'Too many groups joined, please wait a while',
      'upload.quota': 'Today\u2019s upload quota is used up', 'upload.not_multipart': 'The upload failed',
      'upload.no_file': 'No file was chosen', 'upload.not_a_file': 'No file was chosen',
      'rate_limited.login': 'Too many login attempts, please wait a moment',
      'rate_limited.register': 'Too many registrations, please wait a moment',
      // Refusals of frames over the WebSocket (acks).
      'rate_limited.message': 'You are sending too fast: wait a moment',
      'rate_limited.reaction': 'Too many reactions: wait a moment',
      'unavailable.shutting_down': 'The server is restarting: send it again once reconnected',
      'recall.not_found': 'That message was not found', 'recall.not_yours': 'You can only recall your own messages',
      'recall.recalled': 'That message is already recalled', 'recall.too_old': 'This message can no longer be recalled',
      'edit.not_found': 'That message was not found', 'edit.not_yours': 'You can only edit your own messages',
      'edit.recalled': 'A recalled message cannot be edited', 'edit.not_text': 'Only text messages can be edited',
      'edit.too_late': 'This message can no longer be edited',
      'reaction.not_found': 'That message was not found', 'reaction.recalled': 'A recalled message takes no reactions',
      'reaction.too_many': 'That message has too many different reactions',
      'reply.not_found': 'The message replied to was not found', 'forward.not_found': 'The message to forward was not found',
      'forward.recalled': 'A recalled message cannot be forwarded',
      'mention.everyone_not_allowed': 'Only the owner and admins can mention everyone'
    }
  };
  var STATUS_REASONS = {400: 'bad_request', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found',
                        405: 'method_not_allowed', 409: 'conflict', 413: 'too_large',
                        415: 'unsupported_media_type', 429: 'rate_limited', 500: 'internal',
                        502: 'unavailable.upstream', 503: 'unavailable'};

  // What to tell the person about a refusal: {reason, status, field}.
  function reasonText(reason, status, field) {
    var table = REASONS[lang] || REASONS.en;
    if (reason === 'invalid' && field) {
      var label = I18N[lang]['field_' + field] || I18N[lang][field] || field;
      return t('err_field', {field: label});
    }
    if (reason && table[reason]) return table[reason];
    // An unknown `area.what` falls back on `area`, then on the status's general one.
    var area = reason ? String(reason).split('.')[0] : '';
    if (table[area]) return table[area];
    return table[STATUS_REASONS[status]] || table.bad_request;
  }

  var LANG_KEY = 'imchat.lang';
  var SESSION_KEY = 'imchat.session';

  function storageGet(key) {
    try { return window.localStorage.getItem(key); } catch (e) { return null; }
  }
  function storageSet(key, value) {
    try {
      if (value === null) window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, value);
    } catch (e) { /* private mode: the session lasts as long as the page */ }
  }

  // The browser's language decides, Chinese by default; the switch overrides it.
  function detectLang() {
    var saved = storageGet(LANG_KEY);
    if (saved === 'zh' || saved === 'en') return saved;
    var langs = navigator.languages && navigator.languages.length ? navigator.languages
      : [navigator.language || ''];
    for (var i = 0; i < langs.length; i++) {
      var tag = String(langs[i]).toLowerCase();
      if (tag.indexOf('zh') === 0) return 'zh';
      if (tag.indexOf('en') === 0) return 'en';
    }
    return 'zh';
  }

  var lang = detectLang();

  function t(key, params) {
    var text = (I18N[lang] && I18N[lang][key]) || I18N.en[key] || key;
    if (params) {
      text = text.replace(/\{(\w+)\}/g, function (all, name) {
        return params[name] === undefined ? all : String(params[name]);
      });
    }
    return text;
  }

  function applyI18n(root) {
    root = root || document;
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    root.querySelectorAll('[data-i18n]').forEach(function (el) {
      el.textContent = t(el.getAttribute('data-i18n'));
    });
    [['data-i18n-placeholder', 'placeholder'], ['data-i18n-title', 'title'],
     ['data-i18n-aria-label', 'aria-label']].forEach(function (pair) {
      root.querySelectorAll('[' + pair[0] + ']').forEach(function (el) {
        el.setAttribute(pair[1], t(el.getAttribute(pair[0])));
      });
    });
    root.querySelectorAll('.lang-switch').forEach(function (el) {
      el.textContent = t('lang_other');
    });
  }

  function setLang(next) {
    lang = next === 'en' ? 'en' : 'zh';
    storageSet(LANG_KEY, lang);
    applyI18n();
    document.dispatchEvent(new CustomEvent('imchat:lang', {detail: lang}));
  }

  var session = {
    get: function () {
      try {
        var data = JSON.parse(storageGet(SESSION_KEY) || 'null');
        return data && data.token && data.user && data.user.id ? data : null;
      } catch (e) { return null; }
    },
    set: function (profile) {
      var user = {};
      Object.keys(profile).forEach(function (k) { if (k !== 'token') user[k] = profile[k]; });
      storageSet(SESSION_KEY, JSON.stringify({token: profile.token, user: user}));
    },
    updateUser: function (user) {
      var current = session.get();
      if (!current) return;
      current.user = user;
      storageSet(SESSION_KEY, JSON.stringify(current));
    },
    clear: function () { storageSet(SESSION_KEY, null); }
  };

  // `message` is the person's text, in their language, chosen by `reason`.
  function ApiError(message, status, field, reason) {
    this.message = message;
    this.status = status;
    this.field = field;
    this.reason = reason;
  }
  function refusal(data, status) {
    var reason = data && data.reason;
    var field = data && data.field;
    return new ApiError(reasonText(reason, status, field), status, field, reason);
  }
  ApiError.prototype = Object.create(Error.prototype);

  // POST a form to the JSON API with the session's token; resolves with the reply
  // body, rejects with an ApiError carrying the server's message.
  function api(path, fields, method) {
    var current = session.get();
    var headers = {'Accept': 'application/json'};
    if (current) headers['Authorization'] = 'Bearer ' + current.token;
    var init = {method: method || 'POST', headers: headers, credentials: 'same-origin'};
    var body = new URLSearchParams();
    Object.keys(fields || {}).forEach(function (k) {
      if (fields[k] !== undefined && fields[k] !== null) body.append(k, String(fields[k]));
    });
    if (init.method === 'GET') {
      var qs = body.toString();
      if (qs) path += (path.indexOf('?') < 0 ? '?' : '&') + qs;
    } else {
      init.body = body;
    }
    return fetch(path, init).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        if (response.ok && data && data.code === 0) return data;
        throw refusal(data, response.status);
      });
    }, function () {
      throw new ApiError(t('err_network'), 0);
    });
  }

  // Build an element. `props.text` becomes text, never markup; children are nodes
  // or strings (made into text nodes).
  function h(tag, props, children) {
    var el = document.createElement(tag);
    props = props || {};
    Object.keys(props).forEach(function (k) {
      var v = props[k];
      if (v === undefined || v === null || v === false) return;
      if (k === 'text') el.textContent = String(v);
      else if (k === 'className') el.className = v;
      else if (k === 'dataset') Object.keys(v).forEach(function (d) { el.dataset[d] = v[d]; });
      else if (k.indexOf('on') === 0) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      el.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
    });
    return el;
  }

  // Where uploads are served from when not from this server (an OSS bucket or CDN):
  // the page names it, and its Content-Security-Policy allows it.
  var mediaOriginMeta = document.querySelector('meta[name="imchat-media-origin"]');
  var mediaOrigin = mediaOriginMeta ? mediaOriginMeta.getAttribute('content') : null;

  // A URL the page may load (image, audio, video): only this app's own files and its
  // upload store, so a message cannot make the browser fetch anything from elsewhere.
  function localUrl(raw) {
    if (typeof raw !== 'string' || !raw) return null;
    try {
      var url = new URL(raw, window.location.href);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
      if (url.origin === window.location.origin) return url.pathname + url.search + url.hash;
      if (mediaOrigin && url.origin === mediaOrigin) return url.href;
      return null;
    } catch (e) { return null; }
  }

  // A URL a person may choose to open in a new tab: http(s) only (no javascript:).
  function linkUrl(raw) {
    if (typeof raw !== 'string' || !raw) return null;
    try {
      var url = new URL(raw, window.location.href);
      return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
    } catch (e) { return null; }
  }

  // The theme: 'system' (follow prefers-color-scheme), 'light' or 'dark', per device.
  var THEME_KEY = 'imchat.theme';
  function theme() {
    var saved = storageGet(THEME_KEY);
    return saved === 'light' || saved === 'dark' ? saved : 'system';
  }
  function applyTheme() {
    var chosen = theme();
    if (chosen === 'system') document.documentElement.removeAttribute('data-theme');
    else document.documentElement.setAttribute('data-theme', chosen);
  }
  function setTheme(next) {
    storageSet(THEME_KEY, next === 'light' || next === 'dark' ? next : null);
    applyTheme();
  }
  applyTheme();

  function initLangSwitches() {
    document.querySelectorAll('.lang-switch').forEach(function (el) {
      el.addEventListener('click', function () { setLang(lang === 'zh' ? 'en' : 'zh'); });
    });
  }

  window.imchat = {
    t: t, h: h, api: api, session: session, ApiError: ApiError, refusal: refusal,
    reasonText: reasonText, theme: theme, setTheme: setTheme,
    lang: function () { return lang; }, setLang: setLang, applyI18n: applyI18n,
    localUrl: localUrl, linkUrl: linkUrl, storageGet: storageGet, storageSet: storageSet
  };

  document.addEventListener('DOMContentLoaded', function () {
    applyI18n();
    initLangSwitches();
  });
})();
