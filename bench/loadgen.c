/* One load-generating process of bench/chat_bench.py, in C on epoll.
 *
 * The same jobs and the same line protocol as bench/loadgen.py (which see), at a
 * fraction of its CPU a frame: one Python process on uvloop reads at most about 200,000
 * deliveries a second here, so a load of those would saturate the client's core before
 * the server's, and its CPU, on the core MariaDB also runs on, is taken from storing.
 * chat_bench.py builds this with the system's cc (`--load c`, the default when there is
 * one) and writes it the job as lines of words, not JSON:
 *
 *   kind chat|idle
 *   target HOST PORT PATH
 *   window W
 *   concurrency C     connections being opened at once
 *   stall S           seconds with no frame before a chat phase ends, short of its total
 *   setup T           seconds a connection has to be set up (upgraded, its ping answered)
 *                     before it is tried again, up to 5 times in all
 *   conns N           then N lines:  UID TOKEN
 *   senders S         then S lines:  CONN DSTID CMD COUNT LOCAL RATE   (RATE 0: unpaced)
 *   expect E          then E lines:  CONN SENDER_UID COUNT
 *   end
 *
 * It answers as loadgen.py does, with JSON lines: {"ready": ...} once every connection
 * is open and the server has answered a ping on it, then, after "go", {"result": ...};
 * an idle job holds its connections, answering the server's pings, until "close".
 *
 * Message content is "<sender uid>:<seq>:<due or send time in ns, CLOCK_MONOTONIC>",
 * the clock Python's time.monotonic_ns() reads, so either kind of process can time the
 * other's messages. A paced message counts from when it fell due.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUCKET_NS 50000LL
#define BUCKETS 600000
#define ATTEMPTS 5
#define STDIN_KEY UINT64_MAX

enum { CONNECTING, UPGRADING, PINGED, SERVED, CLOSED };

typedef struct {
    uint64_t uid;       /* a sender whose messages this connection should get */
    uint32_t count;
    uint8_t *seen;      /* one byte a seq */
} Expect;

struct Sender;

typedef struct {
    int fd, index, state, attempt;
    int64_t retry_at;           /* when a failed connect is tried again (ns) */
    int64_t opened_at;          /* when the connect was started (ns) */
    uint64_t uid;
    char *token;
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_len, out_cap, out_off;
    int polling_out, dirty;
    int closed_by_server;       /* a close frame came, or the socket was dropped */
    int64_t last_msgid;
    Expect *expects;
    int n_expects;
    struct Sender *sender;
} Conn;

typedef struct Sender {
    Conn *conn;
    uint64_t uid, dstid;
    int cmd, local;
    uint32_t count, next, done, in_flight;
    uint8_t *state;             /* deliveries seen here, +1 for the ack */
    uint8_t *acked;
    int64_t interval_ns, start_ns;
} Sender;

static char kind[16], host[64], path[256];
static int port, window_ = 10, concurrency = 32;
static int64_t stall_ns = 15000000000LL;
static int64_t setup_ns = 60000000000LL;
static Conn *conns;
static int n_conns;
static Sender *senders;
static int n_senders;
static int epfd;
static Conn **dirty;
static int n_dirty;
static uint32_t *hist;
static uint64_t delivered, duplicates, out_of_order, acked, refused, events, expected,
    progress;
static int finished;
static uint32_t mask_state = 0x9e3779b9u;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        die("out of memory");
    return p;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        die("out of memory");
    return p;
}

/* -- the job ------------------------------------------------------------------------ */

static void expect_word(const char *word)
{
    char got[32];
    if (scanf("%31s", got) != 1 || strcmp(got, word) != 0)
        die("bad job: expected \"%s\", got \"%s\"", word, got);
}

/* `WORD SECONDS`, SECONDS above 0, in nanoseconds. */
static int64_t read_seconds(const char *word)
{
    double seconds;
    expect_word(word);
    if (scanf("%lf", &seconds) != 1 || seconds <= 0)
        die("bad job: %s", word);
    return (int64_t)(seconds * 1e9);
}

static void read_job(void)
{
    char token[512];
    expect_word("kind");
    if (scanf("%15s", kind) != 1)
        die("bad job: kind");
    expect_word("target");
    if (scanf("%63s %d %255s", host, &port, path) != 3)
        die("bad job: target");
    expect_word("window");
    if (scanf("%d", &window_) != 1)
        die("bad job: window");
    expect_word("concurrency");
    if (scanf("%d", &concurrency) != 1 || concurrency < 1)
        die("bad job: concurrency");
    stall_ns = read_seconds("stall");
    setup_ns = read_seconds("setup");
    expect_word("conns");
    if (scanf("%d", &n_conns) != 1 || n_conns < 0)
        die("bad job: conns");
    conns = xcalloc(n_conns, sizeof *conns);
    for (int i = 0; i < n_conns; i++) {
        Conn *c = &conns[i];
        if (scanf("%lu %511s", &c->uid, token) != 2)
            die("bad job: conn %d", i);
        c->token = strdup(token);
        c->index = i;
        c->fd = -1;
    }
    expect_word("senders");
    if (scanf("%d", &n_senders) != 1 || n_senders < 0)
        die("bad job: senders");
    senders = xcalloc(n_senders, sizeof *senders);
    for (int i = 0; i < n_senders; i++) {
        Sender *s = &senders[i];
        int conn;
        double rate;
        if (scanf("%d %lu %d %u %d %lf", &conn, &s->dstid, &s->cmd, &s->count, &s->local,
                  &rate) != 6 || conn < 0 || conn >= n_conns)
            die("bad job: sender %d", i);
        s->conn = &conns[conn];
        s->uid = s->conn->uid;
        s->conn->sender = s;
        s->state = xcalloc(s->count, 1);
        s->acked = xcalloc(s->count, 1);
        s->interval_ns = rate > 0 ? (int64_t)(1e9 / rate) : 0;
    }
    int n;
    expect_word("expect");
    if (scanf("%d", &n) != 1 || n < 0)
        die("bad job: expect");
    for (int i = 0; i < n; i++) {
        int conn;
        uint64_t uid;
        uint32_t count;
        if (scanf("%d %lu %u", &conn, &uid, &count) != 3 || conn < 0 || conn >= n_conns)
            die("bad job: expect %d", i);
        Conn *c = &conns[conn];
        c->expects = xrealloc(c->expects, (c->n_expects + 1) * sizeof *c->expects);
        c->expects[c->n_expects++] = (Expect){uid, count, xcalloc(count, 1)};
        expected += count;
    }
    expect_word("end");
}

/* -- writing ------------------------------------------------------------------------ */

static void out_reserve(Conn *c, size_t more)
{
    if (c->out_len + more > c->out_cap) {
        if (c->out_off) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        if (c->out_len + more > c->out_cap) {
            c->out_cap = (c->out_len + more) * 2;
            c->out = xrealloc(c->out, c->out_cap);
        }
    }
}

static void mark_dirty(Conn *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        dirty[n_dirty++] = c;
    }
}

/* A client frame: masked, as RFC 6455 asks, with a key that changes frame to frame. */
static void send_frame(Conn *c, int opcode, const char *payload, size_t n)
{
    if (c->state == CLOSED)
        return;
    out_reserve(c, n + 14);
    unsigned char *p = (unsigned char *)c->out + c->out_len;
    size_t h = 0;
    p[h++] = 0x80 | opcode;
    if (n < 126) {
        p[h++] = 0x80 | n;
    } else if (n < 65536) {
        p[h++] = 0x80 | 126;
        p[h++] = n >> 8;
        p[h++] = n & 0xff;
    } else {
        p[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            p[h++] = (n >> (8 * i)) & 0xff;
    }
    mask_state ^= mask_state << 13;
    mask_state ^= mask_state >> 17;
    mask_state ^= mask_state << 5;
    unsigned char key[4];
    memcpy(key, &mask_state, 4);
    memcpy(p + h, key, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        p[h + i] = payload[i] ^ key[i & 3];
    c->out_len += h + n;
    mark_dirty(c);
}

static void set_events(Conn *c, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.u64 = (uint64_t)c->index};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e) < 0)
        die("epoll_ctl: %s", strerror(errno));
}

static void drop(Conn *c);

static void flush(Conn *c)
{
    c->dirty = 0;
    if (c->fd < 0 || c->state == CONNECTING)
        return;
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                if (!c->polling_out) {
                    c->polling_out = 1;
                    set_events(c, EPOLLIN | EPOLLOUT);
                }
                return;
            }
            drop(c);
            return;
        }
        c->out_off += n;
    }
    c->out_off = c->out_len = 0;
    if (c->polling_out) {
        c->polling_out = 0;
        set_events(c, EPOLLIN);
    }
}

static void flush_dirty(void)
{
    for (int i = 0; i < n_dirty; i++)
        flush(dirty[i]);
    n_dirty = 0;
}

/* -- connecting --------------------------------------------------------------------- */

static int opening;     /* connections being opened (up to `concurrency`) */
static int next_open;   /* the next connection never tried */
static int served;

static void start_connect(Conn *c)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        die("not an IPv4 address: %s", host);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = CONNECTING;
    c->opened_at = now_ns();
    c->in_len = c->out_len = c->out_off = 0;
    c->polling_out = 1;
    struct epoll_event e = {.events = EPOLLOUT, .data.u64 = (uint64_t)c->index};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &e) < 0)
        die("epoll_ctl: %s", strerror(errno));
    opening++;
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS)
        drop(c);
}


static void open_more(void)
{
    while (opening < concurrency && next_open < n_conns)
        start_connect(&conns[next_open++]);
}

static void on_connected(Conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        drop(c);
        return;
    }
    c->state = UPGRADING;
    char request[1024];
    int n = snprintf(request, sizeof request,
                     "GET %s?id=%lu&token=%s HTTP/1.1\r\nHost: %s:%d\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     path, c->uid, c->token, host, port);
    out_reserve(c, n);
    memcpy(c->out + c->out_len, request, n);
    c->out_len += n;
    c->polling_out = 1;  /* flush sets EPOLLIN once all is written */
    flush(c);
}

/* A connection that failed or was closed: while opening, it is tried again later (as
 * loadgen.py does, up to ATTEMPTS times); once open, the server closed it. */
static void drop(Conn *c)
{
    int was = c->state;
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    c->state = CLOSED;
    c->out_off = c->out_len = 0;
    if (was == SERVED) {
        c->closed_by_server = 1;
        return;
    }
    if (was == CLOSED)
        return;
    opening--;
    if (++c->attempt >= ATTEMPTS)
        die("connection %d (user %lu) could not be opened", c->index, c->uid);
    c->retry_at = now_ns() + (int64_t)(0.5e9 * c->attempt);
}

/* Connections due to be tried again, and those the server has not set up in time (as
 * loadgen.py's handshake and ping timeouts): a server out of files leaves them waiting. */
static void retry_due(int64_t now)
{
    for (int i = 0; i < next_open; i++) {
        Conn *c = &conns[i];
        if (c->fd >= 0 && c->state != SERVED && now - c->opened_at > setup_ns) {
            fprintf(stderr, "loadgen: connection %d (user %lu) not set up in %.1f s\n",
                    c->index, c->uid, setup_ns / 1e9);
            drop(c);
        }
        if (c->retry_at && c->retry_at <= now && opening < concurrency) {
            c->retry_at = 0;
            start_connect(c);
        }
    }
}

/* -- reading ------------------------------------------------------------------------ */

static void emit_ready(void);
static void send_more(Sender *s, int64_t now);

static Sender *sender_of(uint64_t uid)
{
    for (int i = 0; i < n_senders; i++)
        if (senders[i].uid == uid)
            return &senders[i];
    return NULL;
}

static int all_senders_done(void)
{
    for (int i = 0; i < n_senders; i++)
        if (senders[i].done != senders[i].count)
            return 0;
    return 1;
}

static void check_finished(void)
{
    if (delivered == expected && all_senders_done())
        finished = 1;
}

static void advance(Sender *s, uint32_t seq)
{
    if (++s->state[seq] == s->local + 1) {  /* acknowledged and delivered here */
        s->in_flight--;
        s->done++;
        send_more(s, now_ns());
        if (s->done == s->count)
            check_finished();
    }
}

/* The value after "key": in a JSON object written by the server (a number or a string
 * without escapes); NULL when the key is not there. */
static const char *field(const char *p, size_t n, const char *key, size_t *len)
{
    size_t k = strlen(key);
    const char *end = p + n;
    for (const char *q = memmem(p, n, key, k); q; q = memmem(q + 1, end - q - 1, key, k)) {
        if (q == p || q[-1] != '"' || q + k >= end || q[k] != '"')
            continue;
        const char *v = q + k + 1;
        while (v < end && (*v == ' ' || *v == ':'))
            v++;
        if (v >= end)
            return NULL;
        const char *e = v;
        if (*v == '"') {
            v++;
            e = memchr(v, '"', end - v);
            if (!e)
                return NULL;
        } else {
            while (e < end && *e != ',' && *e != '}' && *e != ' ')
                e++;
        }
        *len = e - v;
        return v;
    }
    return NULL;
}

/* The number after "key", or LLONG_MIN when there is none. */
static long long number_field(const char *p, size_t n, const char *key)
{
    size_t len = 0;
    const char *v = field(p, n, key, &len);
    char buf[32];
    if (!v || len == 0 || len >= sizeof buf)
        return LLONG_MIN;
    memcpy(buf, v, len);
    buf[len] = 0;
    char *e;
    long long x = strtoll(buf, &e, 10);
    return *e ? LLONG_MIN : x;
}

static void on_delivery(Conn *c, const char *p, size_t n, int64_t now)
{
    size_t len;
    long long msgid = number_field(p, n, "msgid");
    if (msgid <= c->last_msgid)
        out_of_order++;
    c->last_msgid = msgid;
    const char *content = field(p, n, "content", &len);
    if (!content)
        return;
    unsigned long uid;
    unsigned seq;
    long long sent;
    char buf[96];
    if (len >= sizeof buf)
        return;
    memcpy(buf, content, len);
    buf[len] = 0;
    if (sscanf(buf, "%lu:%u:%lld", &uid, &seq, &sent) != 3)
        return;
    Expect *x = NULL;
    for (int i = 0; i < c->n_expects; i++)
        if (c->expects[i].uid == uid)
            x = &c->expects[i];
    if (!x || seq >= x->count)
        return;
    if (x->seen[seq]) {
        duplicates++;
        return;
    }
    x->seen[seq] = 1;
    delivered++;
    long long bucket = (now - sent) / BUCKET_NS;
    hist[bucket < 0 ? 0 : bucket < BUCKETS ? bucket : BUCKETS - 1]++;
    Sender *s = sender_of(uid);
    if (s && seq < s->count)
        advance(s, seq);
    if (delivered == expected)
        check_finished();
}

static void on_other(Conn *c, const char *p, size_t n)
{
    size_t len;
    if (number_field(p, n, "cmd") != 1) {
        events++;  /* presence and the like, on commits that send them */
        return;
    }
    Sender *s = c->sender;
    const char *id = field(p, n, "id", &len);
    unsigned long uid;
    unsigned seq;
    char buf[96];
    if (!s || !id || len >= sizeof buf)
        return;
    memcpy(buf, id, len);
    buf[len] = 0;
    if (sscanf(buf, "b%lu-%u-", &uid, &seq) != 2 || uid != s->uid || seq >= s->next ||
        s->acked[seq])
        return;
    if (number_field(p, n, "code") != 0) {
        refused++;
        fprintf(stderr, "refused: %.*s\n", (int)n, p);
        return;
    }
    s->acked[seq] = 1;
    acked++;
    advance(s, seq);
}

static void on_text(Conn *c, const char *p, size_t n, int64_t now)
{
    progress++;
    if (n > 9 && memcmp(p, "{\"msgid\":", 9) == 0)
        on_delivery(c, p, n, now);
    else
        on_other(c, p, n);
}

static void on_served(Conn *c)
{
    c->state = SERVED;
    opening--;
    served++;
    open_more();
    if (served == n_conns)
        emit_ready();
}

/* The frames read so far; returns 0 once the connection is gone. */
static int read_frames(Conn *c, int64_t now)
{
    size_t pos = 0;
    unsigned char *b = (unsigned char *)c->in;
    while (c->in_len - pos >= 2) {
        int opcode = b[pos] & 0x0f;
        uint64_t n = b[pos + 1] & 0x7f;
        size_t h = 2;
        if (b[pos + 1] & 0x80)
            die("a masked frame from the server");
        if (n == 126) {
            if (c->in_len - pos < 4)
                break;
            n = (uint64_t)b[pos + 2] << 8 | b[pos + 3];
            h = 4;
        } else if (n == 127) {
            if (c->in_len - pos < 10)
                break;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | b[pos + 2 + i];
            h = 10;
        }
        if (c->in_len - pos < h + n)
            break;
        const char *payload = (const char *)b + pos + h;
        pos += h + n;
        switch (opcode) {
        case 1:
            if (!(b[pos - h - n] & 0x80))
                die("a fragmented message from the server");
            on_text(c, payload, n, now);
            break;
        case 9:
            send_frame(c, 10, payload, n);
            break;
        case 10:
            if (c->state == PINGED)
                on_served(c);
            break;
        case 8:
            send_frame(c, 8, payload, n >= 2 ? 2 : 0);
            flush(c);
            /* Closed while being set up (a bad token, say): it is open, and closed by
             * the server, as loadgen.py counts it, not a connect to try again. */
            if (c->state == PINGED)
                on_served(c);
            drop(c);
            return 0;
        default:
            break;
        }
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
    return 1;
}

static void on_readable(Conn *c, int64_t now)
{
    for (;;) {
        /* Small while a connection only answers pings; doubled while reads fill it. */
        if (c->in_cap - c->in_len < 4096) {
            c->in_cap = c->in_cap ? c->in_cap * 2 : 16384;
            c->in = xrealloc(c->in, c->in_cap);
        }
        size_t space = c->in_cap - c->in_len;
        ssize_t n = recv(c->fd, c->in + c->in_len, space, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            drop(c);
            return;
        }
        c->in_len += n;
        if (c->state == UPGRADING) {
            char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
            if (!end)
                continue;
            if (c->in_len < 12 || memcmp(c->in + 9, "101", 3) != 0) {
                fprintf(stderr, "loadgen: upgrade refused: %.*s\n",
                        (int)(end - c->in), c->in);
                drop(c);
                return;
            }
            size_t head = end + 4 - c->in;
            memmove(c->in, c->in + head, c->in_len - head);
            c->in_len -= head;
            c->state = PINGED;
            send_frame(c, 9, "", 0);
        }
        if (!read_frames(c, now))
            return;
        if ((size_t)n < space)
            return;  /* the socket had less than was asked for: it is empty now */
    }
}

/* -- the phases --------------------------------------------------------------------- */

static int64_t t_start;

static void emit_ready(void)
{
    if (strcmp(kind, "idle") == 0)
        printf("{\"ready\": %d, \"seconds\": %.3f}\n", n_conns, (now_ns() - t_start) / 1e9);
    else
        printf("{\"ready\": %d}\n", n_conns);
    fflush(stdout);
}

static void send_more(Sender *s, int64_t now)
{
    uint32_t limit = s->count;
    if (s->interval_ns) {
        int64_t due = now < s->start_ns ? 0 : (now - s->start_ns) / s->interval_ns + 1;
        if (due < limit)
            limit = due;
    }
    char payload[256];
    while (s->in_flight < (uint32_t)window_ && s->next < limit) {
        uint32_t seq = s->next++;
        s->in_flight++;
        int64_t sent = s->interval_ns ? s->start_ns + seq * s->interval_ns : now;
        int n = snprintf(payload, sizeof payload,
                         "{\"id\":\"b%lu-%u-xxxxxxxx\",\"cmd\":%d,\"dstid\":%lu,\"media\":1,"
                         "\"content\":\"%lu:%u:%ld\"}",
                         s->uid, seq, s->cmd, s->dstid, s->uid, seq, sent);
        send_frame(s->conn, 1, payload, n);
    }
}

/* The next instant a paced sender has a message due that its window lets go. */
static int64_t next_due(void)
{
    int64_t best = INT64_MAX;
    for (int i = 0; i < n_senders; i++) {
        Sender *s = &senders[i];
        if (s->interval_ns && s->next < s->count && s->in_flight < (uint32_t)window_) {
            int64_t due = s->start_ns + (int64_t)s->next * s->interval_ns;
            if (due < best)
                best = due;
        }
    }
    return best;
}

static char line[64];
static size_t line_len;

/* A whole line from the orchestrator, or NULL; exits when stdin closes. */
static const char *read_command(void)
{
    ssize_t n = read(0, line + line_len, sizeof line - 1 - line_len);
    if (n <= 0)
        exit(0);
    line_len += n;
    char *nl = memchr(line, '\n', line_len);
    if (!nl)
        return NULL;
    *nl = 0;
    line_len = 0;
    return line;
}

static int phase;  /* 0 connecting, 1 ready, 2 chatting, 3 closing */
static double cpu0;
static int64_t chat_start;

static void start_chat(void)
{
    phase = 2;
    cpu0 = cpu_seconds();
    chat_start = now_ns();
    for (int i = 0; i < n_senders; i++) {
        /* Paced senders are spread over one interval, not all due at the same instant. */
        senders[i].start_ns = chat_start + i * senders[i].interval_ns / n_senders;
        send_more(&senders[i], chat_start);
    }
    if (!n_senders && !expected)
        finished = 1;
}

static void emit_result(int64_t end)
{
    double cpu = cpu_seconds() - cpu0;
    uint64_t sent = 0;
    int closed = 0;
    for (int i = 0; i < n_senders; i++)
        sent += senders[i].next;
    for (int i = 0; i < n_conns; i++)
        closed += conns[i].closed_by_server;
    printf("{\"result\": {\"start\": %.9f, \"end\": %.9f, \"cpu\": %.6f, \"acked\": %lu, "
           "\"sent\": %lu, \"delivered\": %lu, \"expected\": %lu, \"duplicates\": %lu, "
           "\"out_of_order\": %lu, \"refused\": %lu, \"closed\": %d, \"hist\": {",
           chat_start / 1e9, end / 1e9, cpu, acked, sent, delivered, expected, duplicates,
           out_of_order, refused, closed);
    int first = 1;
    for (int i = 0; i < BUCKETS; i++)
        if (hist[i]) {
            printf("%s\"%d\": %u", first ? "" : ", ", i, hist[i]);
            first = 0;
        }
    printf("}}}\n");
    fflush(stdout);
}

/* epoll_pwait2 times in nanoseconds (Linux 5.11 on); before it, epoll_wait in whole
 * milliseconds, rounded up so that nothing is sent before it falls due. */
static int wait_events(struct epoll_event *evs, int max, const struct timespec *ts)
{
    static int whole_ms;
    if (!whole_ms) {
        int n = epoll_pwait2(epfd, evs, max, ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        whole_ms = 1;
    }
    long long ms = ts->tv_sec * 1000LL + (ts->tv_nsec + 999999) / 1000000;
    return epoll_wait(epfd, evs, max, ms > INT_MAX ? INT_MAX : (int)ms);
}

int main(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    read_job();
    hist = xcalloc(BUCKETS, sizeof *hist);
    dirty = xcalloc(n_conns, sizeof *dirty);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event in = {.events = EPOLLIN, .data.u64 = STDIN_KEY};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &in) < 0)
        die("epoll_ctl stdin: %s", strerror(errno));
    t_start = now_ns();
    open_more();
    if (n_conns == 0)
        emit_ready();
    int64_t last_progress_at = 0;
    uint64_t last_progress = UINT64_MAX;
    struct epoll_event evs[512];
    for (;;) {
        int64_t now = now_ns();
        int64_t wake = now + 1000000000LL;
        if (phase == 2) {
            int64_t due = next_due();
            if (due < wake)
                wake = due;
        }
        if (phase == 0)
            wake = now + 100000000LL;  /* connections to try again */
        struct timespec ts = {0, 0};
        if (wake > now) {
            ts.tv_sec = (wake - now) / 1000000000LL;
            ts.tv_nsec = (wake - now) % 1000000000LL;
        }
        int n = wait_events(evs, 512, &ts);
        if (n < 0 && errno != EINTR)
            die("epoll wait: %s", strerror(errno));
        now = now_ns();
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == STDIN_KEY) {
                const char *command = read_command();
                if (!command)
                    continue;
                if (strcmp(command, "go") == 0 && phase == 1)
                    start_chat();
                else if (strcmp(command, "close") == 0)
                    phase = 3;
                continue;
            }
            Conn *c = &conns[evs[i].data.u64];
            if (c->fd < 0)
                continue;
            if (c->state == CONNECTING) {
                on_connected(c);
                continue;
            }
            if (evs[i].events & EPOLLOUT)
                flush(c);
            if (c->fd >= 0 && evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(c, now);
        }
        if (phase == 0) {
            retry_due(now);
            open_more();
            if (served == n_conns)
                phase = 1;
        }
        if (phase == 2) {
            for (int i = 0; i < n_senders; i++)
                if (senders[i].interval_ns)
                    send_more(&senders[i], now);
            if (progress != last_progress) {
                last_progress = progress;
                last_progress_at = now;
            }
            if (finished || now - last_progress_at > stall_ns) {
                flush_dirty();
                emit_result(now_ns());
                phase = 3;
                continue;
            }
        }
        flush_dirty();
        if (phase == 3) {
            if (strcmp(kind, "idle") == 0) {
                int closed = 0;
                for (int i = 0; i < n_conns; i++)
                    closed += conns[i].closed_by_server;
                printf("{\"result\": {\"closed_by_server\": %d}}\n", closed);
                fflush(stdout);
            }
            for (int i = 0; i < n_conns; i++)
                if (conns[i].fd >= 0)
                    close(conns[i].fd);
            return 0;
        }
    }
}
