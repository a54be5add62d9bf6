/*
 * Incremental HTTP/1.1 message parser for proxyd (RFC 9112), I/O-free.
 *
 * One parser per direction of a connection: HTTP_REQUEST on the bytes the
 * client sends (the server side of the MITM), HTTP_RESPONSE on the bytes the
 * origin sends.  Bytes are fed as they arrive, in any split; the parser hands
 * back one event at a time (pull style), so the caller can act between events
 * — e.g. tell a response parser which request method the next response
 * answers.  The header block is buffered (bounded by struct http_limits);
 * bodies never are: HTTP_EV_BODY points into the caller's input.
 *
 * Usage:
 *	for (;;) {
 *		ev = http_parse(p, buf, len, &used, &data, &data_len);
 *		buf += used; len -= used;
 *		if (ev == HTTP_EV_NEED_MORE) break;	   // all input consumed
 *		... HEADERS: p->msg complete; BODY: data/data_len; END;
 *		    UPGRADE / PAUSED / ERROR: stop feeding (see below) ...
 *	}
 * and http_parse_eof() when the peer closes (ends read-until-close bodies).
 *
 * Framing follows RFC 9112 §6.3; the choices a careful proxy has to make
 * (request smuggling shapes, bare LF/CR, obs-fold) are in docs/proxyd-parsers.md.
 */
#ifndef LOCALCAP_PROXYD_HTTP_H
#define LOCALCAP_PROXYD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum http_kind {
	HTTP_REQUEST,
	HTTP_RESPONSE,
};

/* Known methods; anything else that is a valid token is HTTP_M_OTHER. */
enum http_method {
	HTTP_M_OTHER = 0,
	HTTP_M_GET,
	HTTP_M_HEAD,
	HTTP_M_POST,
	HTTP_M_PUT,
	HTTP_M_DELETE,
	HTTP_M_CONNECT,
	HTTP_M_OPTIONS,
	HTTP_M_TRACE,
	HTTP_M_PATCH,
};

enum http_event {
	HTTP_EV_NEED_MORE = 0,	/* every input byte consumed, nothing pending */
	HTTP_EV_HEADERS,	/* start line + header fields ready in p->msg */
	HTTP_EV_BODY,		/* a piece of the (de-chunked) body */
	HTTP_EV_END,		/* message complete (trailers in p->msg) */
	HTTP_EV_UPGRADE,	/* 101 or 2xx to CONNECT: the rest is not HTTP */
	HTTP_EV_PAUSED,		/* request asked for CONNECT/Upgrade: wait for
				 * the response, then http_parser_resume() */
	HTTP_EV_ERROR,		/* p->error says why; sticky */
};

enum http_error {
	HTTP_OK = 0,
	HTTP_ERR_START_LINE_TOO_LONG,
	HTTP_ERR_FIELD_TOO_LONG,
	HTTP_ERR_HEAD_TOO_LARGE,
	HTTP_ERR_TOO_MANY_FIELDS,
	HTTP_ERR_BAD_METHOD,
	HTTP_ERR_BAD_TARGET,
	HTTP_ERR_BAD_VERSION,
	HTTP_ERR_UNSUPPORTED_VERSION,
	HTTP_ERR_BAD_STATUS,
	HTTP_ERR_BAD_REASON,
	HTTP_ERR_BARE_CR,
	HTTP_ERR_OBS_FOLD,
	HTTP_ERR_BAD_FIELD_NAME,
	HTTP_ERR_WS_BEFORE_COLON,
	HTTP_ERR_BAD_FIELD_VALUE,
	HTTP_ERR_BAD_CONTENT_LENGTH,
	HTTP_ERR_CONTENT_LENGTH_MISMATCH,
	HTTP_ERR_TE_AND_CL,
	HTTP_ERR_BAD_TRANSFER_ENCODING,
	HTTP_ERR_TE_NOT_CHUNKED,
	HTTP_ERR_TE_IN_HTTP10,
	HTTP_ERR_BAD_CHUNK_SIZE,
	HTTP_ERR_CHUNK_SIZE_OVERFLOW,
	HTTP_ERR_BAD_CHUNK_EXT,
	HTTP_ERR_CHUNK_LINE_TOO_LONG,
	HTTP_ERR_CHUNK_CRLF,
	HTTP_ERR_DATA_AFTER_CLOSE,
	HTTP_ERR_TRUNCATED,
	HTTP_ERR_BAD_HOST,
	HTTP_ERR_NOMEM,
	HTTP_ERR__COUNT,
};

/* Size limits; every one has its own error. */
struct http_limits {
	size_t	max_start_line;	/* request/status line, bytes incl. CRLF */
	size_t	max_field_line;	/* one header or trailer line */
	size_t	max_head;	/* whole header block (or trailer block) */
	size_t	max_fields;	/* header (or trailer) fields per message */
	size_t	max_chunk_line;	/* chunk-size line incl. extensions */
};

#define HTTP_DEFAULT_MAX_START_LINE	(8 * 1024)
#define HTTP_DEFAULT_MAX_FIELD_LINE	(8 * 1024)
#define HTTP_DEFAULT_MAX_HEAD		(64 * 1024)
#define HTTP_DEFAULT_MAX_FIELDS		100
#define HTTP_DEFAULT_MAX_CHUNK_LINE	4096

/* Name and value are NUL-terminated (the value without surrounding OWS). */
struct http_field {
	const char	*name;
	size_t		 name_len;
	const char	*value;
	size_t		 value_len;
};

enum http_body {
	HTTP_BODY_NONE,		/* no content (HEAD answer, 1xx/204/304, …) */
	HTTP_BODY_LENGTH,	/* Content-Length bytes */
	HTTP_BODY_CHUNKED,	/* Transfer-Encoding ending in chunked */
	HTTP_BODY_UNTIL_CLOSE,	/* response without framing */
	HTTP_BODY_TUNNEL,	/* 101 / 2xx to CONNECT: not HTTP any more */
};

/*
 * One message.  Every pointer points into the parser's buffers and stays
 * valid from HTTP_EV_HEADERS until the next message starts (the first
 * http_parse() call after HTTP_EV_END).
 */
struct http_msg {
	bool		 is_request;
	/* request line */
	const char	*method;
	size_t		 method_len;
	enum http_method method_id;
	const char	*target;
	size_t		 target_len;
	/* status line */
	int		 status;
	const char	*reason;
	size_t		 reason_len;
	int		 version_minor;	/* HTTP/1.x; major is always 1 */

	struct http_field *fields;
	size_t		 nfields;
	struct http_field *trailers;	/* set at HTTP_EV_END */
	size_t		 ntrailers;

	enum http_body	 body;
	uint64_t	 content_length;	/* for HTTP_BODY_LENGTH */
	bool		 keep_alive;	/* connection persists after this one */
	bool		 upgrade;	/* request: CONNECT or Upgrade asked */
	bool		 expect_continue;	/* request: Expect: 100-continue */
	const char	*host;		/* request: the one Host value, or NULL */
	bool		 interim;	/* response: 1xx other than 101 */
	bool		 te_overrode_cl;	/* response: had both; CL must be
						 * dropped when forwarding */
};

struct http_parser {
	enum http_kind	 kind;
	struct http_limits lim;
	enum http_error	 error;
	struct http_msg	 msg;

	/* private */
	int		 state;
	enum http_method next_req_method;	/* responses: what it answers */
	char		*head;		/* header block being accumulated */
	size_t		 head_len, head_cap;
	char		*trail;		/* trailer block */
	size_t		 trail_len, trail_cap;
	size_t		 line_len;	/* bytes of the current line so far */
	size_t		 nlines;	/* complete lines in the block */
	size_t		 skipped;	/* empty lines skipped before a request */
	struct http_field *fields, *tfields;
	size_t		 fields_cap, tfields_cap;
	uint64_t	 remaining;	/* body or chunk bytes left */
	bool		 chunk_digits;	/* chunk-size saw a hex digit */
	bool		 chunk_in_ext;	/* inside the extensions */
};

void	http_limits_default(struct http_limits *lim);
/* lim may be NULL for the defaults.  Never fails (buffers grow lazily). */
void	http_parser_init(struct http_parser *p, enum http_kind kind,
	    const struct http_limits *lim);
void	http_parser_free(struct http_parser *p);

/*
 * Consume up to len bytes; *used says how many.  For HTTP_EV_BODY, *data and
 * *data_len give the body piece (inside buf).  Call again, with the rest of
 * the input or with len 0, until HTTP_EV_NEED_MORE.
 */
enum http_event http_parse(struct http_parser *p, const uint8_t *buf,
	    size_t len, size_t *used, const uint8_t **data, size_t *data_len);
/* The peer closed: ends a read-until-close body (HTTP_EV_END), is a clean
 * end between messages (HTTP_EV_NEED_MORE), or HTTP_ERR_TRUNCATED. */
enum http_event http_parse_eof(struct http_parser *p);

/* Response parsers: the method of the request the next response answers
 * (HEAD and CONNECT change framing).  Default GET. */
void	http_parser_set_request_method(struct http_parser *p, enum http_method m);
/* Request parsers: after HTTP_EV_PAUSED, the upgrade/CONNECT was refused;
 * parse the following bytes as HTTP again. */
void	http_parser_resume(struct http_parser *p);

const char *http_error_str(enum http_error err);
/* 400, 413/431, 501, 505 … the status a server answers this error with. */
int	 http_error_status(enum http_error err);
enum http_method http_method_lookup(const char *s, size_t len);

/* First field named name (case-insensitive), or NULL. */
const struct http_field *http_field_get(const struct http_field *f, size_t n,
	    const char *name);
/* Whether any field named name has token in its comma-separated list
 * (case-insensitive; parameters after ';' ignored). */
bool	http_field_has_token(const struct http_field *f, size_t n,
	    const char *name, const char *token);
/* Whether s is a valid RFC 9110 token. */
bool	http_is_token(const char *s, size_t len);

/*
 * Request targets for proxying.  An authority is "host:port" with host a
 * reg-name, an IPv4 address or "[IPv6]" (brackets removed in host); no
 * userinfo.  default_port is used when ":port" is absent, 0 to require it
 * (CONNECT).  An absolute-form target is "http://authority/path…" or
 * "https://…"; *path points into target ("/" when the target has none:
 * path_len 0).  Both return false on anything malformed.
 */
bool	http_split_authority(const char *s, size_t len, uint16_t default_port,
	    char *host, size_t hostsz, uint16_t *port);
bool	http_split_absolute(const char *target, size_t len, bool *https,
	    char *host, size_t hostsz, uint16_t *port, const char **path,
	    size_t *path_len);

#endif
