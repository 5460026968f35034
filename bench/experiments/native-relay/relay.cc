// A native relay for one established stream: it owns the TLS connection of the stream (TLS 1.3,
// TLS_AES_128_GCM_SHA256, mutual certificates) and copies between it and a plain TCP socket in a thread
// of its own, with OpenSSL's SSL_read/SSL_write into two reusable buffers. JavaScript keeps the control
// plane: it accepts and dials the sockets, hands over their descriptors (duplicated here, so JavaScript
// closes its own handles at once) and is called back once, when the stream is over.
//
// OpenSSL is the one inside the node binary: the headers come with Node's (node-gyp's) headers and the
// symbols resolve against the running node process when the addon is loaded.
#include <napi.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

constexpr size_t kBuffer = 256 * 1024;
constexpr int kHandshakeMs = 10000;

std::string SslError(const char* what) {
  char buf[256];
  unsigned long e = ERR_get_error();
  if (e == 0) return std::string(what) + (errno ? std::string(": ") + std::strerror(errno) : "");
  ERR_error_string_n(e, buf, sizeof buf);
  return std::string(what) + ": " + buf;
}

struct Context {
  SSL_CTX* ctx = nullptr;
  bool server = false;
  std::string host;  // the name the client checks in the server's certificate
};

void FreeContext(Napi::Env, Context* c) {
  if (c->ctx) SSL_CTX_free(c->ctx);
  delete c;
}

bool LoadPem(SSL_CTX* ctx, const std::string& cert, const std::string& key, const std::string& ca, std::string* err) {
  BIO* b = BIO_new_mem_buf(cert.data(), static_cast<int>(cert.size()));
  X509* x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  if (!x || SSL_CTX_use_certificate(ctx, x) != 1) return X509_free(x), *err = SslError("certificate"), false;
  X509_free(x);
  b = BIO_new_mem_buf(key.data(), static_cast<int>(key.size()));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  if (!k || SSL_CTX_use_PrivateKey(ctx, k) != 1) return EVP_PKEY_free(k), *err = SslError("private key"), false;
  EVP_PKEY_free(k);
  b = BIO_new_mem_buf(ca.data(), static_cast<int>(ca.size()));
  X509* c = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  if (!c || X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), c) != 1) return X509_free(c), *err = SslError("CA"), false;
  X509_free(c);
  return true;
}

// createContext({ server, certPem, keyPem, caPem, host? }) → an opaque context shared by many relays.
Napi::Value CreateContext(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = info[0].As<Napi::Object>();
  auto* c = new Context();
  c->server = o.Get("server").ToBoolean();
  if (o.Has("host")) c->host = o.Get("host").ToString();
  c->ctx = SSL_CTX_new(c->server ? TLS_server_method() : TLS_client_method());
  std::string err;
  if (!c->ctx) err = SslError("SSL_CTX_new");
  if (err.empty() && (SSL_CTX_set_min_proto_version(c->ctx, TLS1_3_VERSION) != 1 ||
                      SSL_CTX_set_ciphersuites(c->ctx, "TLS_AES_128_GCM_SHA256") != 1))
    err = SslError("TLS 1.3 settings");
  if (err.empty())
    LoadPem(c->ctx, o.Get("certPem").ToString(), o.Get("keyPem").ToString(), o.Get("caPem").ToString(), &err);
  if (!err.empty()) {
    FreeContext(env, c);
    Napi::Error::New(env, err).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_num_tickets(c->ctx, 0);
  SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
  return Napi::External<Context>::New(env, c, FreeContext);
}

struct Job {
  int plain = -1;
  int tls = -1;
  SSL* ssl = nullptr;
  bool server = false;
  Napi::ThreadSafeFunction done;
  std::string error;
  uint64_t toTls = 0;    // bytes from the plain socket sent into TLS
  uint64_t fromTls = 0;  // bytes from TLS written to the plain socket
};

int PollOne(int fd, short events, int ms) {
  pollfd p{fd, events, 0};
  return poll(&p, 1, ms);
}

bool Handshake(Job* j) {
  SSL_set_fd(j->ssl, j->tls);
  for (;;) {
    ERR_clear_error();
    int rc = j->server ? SSL_accept(j->ssl) : SSL_connect(j->ssl);
    if (rc == 1) return true;
    int e = SSL_get_error(j->ssl, rc);
    short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
    if (!ev) {
      long v = SSL_get_verify_result(j->ssl);
      j->error = v != X509_V_OK ? std::string("TLS handshake: ") + X509_verify_cert_error_string(v) : SslError("TLS handshake");
      return false;
    }
    int p = PollOne(j->tls, ev, kHandshakeMs);
    if (p == 0) return j->error = "TLS handshake: timed out", false;
    if (p < 0 && errno != EINTR) return j->error = SslError("poll"), false;
  }
}

// Copies both ways until both directions have ended (half-close kept: the plain socket's EOF becomes a
// close_notify, the peer's close_notify a FIN on the plain socket) or one side fails.
void Copy(Job* j) {
  std::vector<char> up(kBuffer), down(kBuffer);
  size_t upLen = 0, upOff = 0, downLen = 0, downOff = 0;
  bool plainEof = false, tlsEof = false, notifySent = false, plainShut = false;
  for (;;) {
    bool progress = false;
    short pe = 0, te = 0;
    // plain → TLS
    if (!plainEof && upLen == 0) {
      ssize_t n = read(j->plain, up.data(), kBuffer);
      if (n > 0) upLen = static_cast<size_t>(n), upOff = 0, progress = true;
      else if (n == 0) plainEof = progress = true;
      else if (errno == EAGAIN || errno == EWOULDBLOCK) pe |= POLLIN;
      else if (errno != EINTR) return void(j->error = std::string("read: ") + std::strerror(errno));
    }
    while (upOff < upLen) {
      ERR_clear_error();
      size_t w = 0;
      int rc = SSL_write_ex(j->ssl, up.data() + upOff, upLen - upOff, &w);
      if (rc == 1) {
        upOff += w, j->toTls += w, progress = true;
        if (upOff == upLen) upOff = upLen = 0;
        continue;
      }
      int e = SSL_get_error(j->ssl, rc);
      if (e == SSL_ERROR_WANT_WRITE) te |= POLLOUT;
      else if (e == SSL_ERROR_WANT_READ) te |= POLLIN;
      else return void(j->error = SslError("SSL_write"));
      break;
    }
    if (plainEof && upLen == 0 && !notifySent) {
      ERR_clear_error();
      int rc = SSL_shutdown(j->ssl);
      int e = rc < 0 ? SSL_get_error(j->ssl, rc) : SSL_ERROR_NONE;
      if (e == SSL_ERROR_WANT_WRITE) te |= POLLOUT;
      else if (e == SSL_ERROR_NONE || e == SSL_ERROR_WANT_READ) notifySent = progress = true;
      else return void(j->error = SslError("SSL_shutdown"));
    }
    // TLS → plain: as many records as have arrived, up to the buffer, then one write
    while (!tlsEof && downLen < kBuffer) {
      ERR_clear_error();
      size_t got = 0;
      int rc = SSL_read_ex(j->ssl, down.data() + downLen, kBuffer - downLen, &got);
      if (rc == 1) {
        downLen += got, progress = true;
        continue;
      }
      int e = SSL_get_error(j->ssl, rc);
      if (e == SSL_ERROR_ZERO_RETURN) tlsEof = progress = true;
      else if (e == SSL_ERROR_WANT_READ) te |= POLLIN;
      else if (e == SSL_ERROR_WANT_WRITE) te |= POLLOUT;
      else return void(j->error = SslError("SSL_read"));
      break;
    }
    if (downOff < downLen) {
      ssize_t n = write(j->plain, down.data() + downOff, downLen - downOff);
      if (n > 0) {
        downOff += static_cast<size_t>(n), j->fromTls += static_cast<uint64_t>(n), progress = true;
        if (downOff == downLen) downOff = downLen = 0;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) pe |= POLLOUT;
      else if (n < 0 && errno != EINTR) return void(j->error = std::string("write: ") + std::strerror(errno));
    }
    if (tlsEof && downLen == 0 && !plainShut) shutdown(j->plain, SHUT_WR), plainShut = progress = true;
    if (plainShut && notifySent) return;
    if (progress) continue;
    pollfd p[2] = {{j->plain, pe, 0}, {j->tls, te, 0}};
    if (poll(p, 2, -1) < 0 && errno != EINTR) return void(j->error = std::string("poll: ") + std::strerror(errno));
  }
}

void Run(Job* j) {
  if (Handshake(j)) Copy(j);
  if (!j->error.empty()) {
    // A failed stream is reset on both sides, as a destroyed Node socket would be.
    linger l{1, 0};
    setsockopt(j->plain, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    setsockopt(j->tls, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  SSL_free(j->ssl);
  close(j->plain);
  close(j->tls);
  // The callback deletes the job on the main thread: keep the function to release it afterwards.
  Napi::ThreadSafeFunction done = j->done;
  done.BlockingCall(j, [](Napi::Env env, Napi::Function cb, Job* job) {
    Napi::Value err = job->error.empty() ? env.Null() : Napi::Error::New(env, job->error).Value();
    cb.Call({err, Napi::Number::New(env, static_cast<double>(job->toTls)), Napi::Number::New(env, static_cast<double>(job->fromTls))});
    delete job;
  });
  done.Release();
}

int Adopt(int fd) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return -1;
  int fl = fcntl(d, F_GETFL);
  fcntl(d, F_SETFL, fl | O_NONBLOCK);
  int one = 1;
  setsockopt(d, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return d;
}

// relay(context, plainFd, tlsFd, done(err, bytesToTls, bytesFromTls)): both descriptors are duplicated;
// the caller closes its handles. Throws if a descriptor cannot be taken over.
Napi::Value Relay(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Context* c = info[0].As<Napi::External<Context>>().Data();
  auto* j = new Job();
  j->server = c->server;
  j->plain = Adopt(info[1].As<Napi::Number>().Int32Value());
  j->tls = Adopt(info[2].As<Napi::Number>().Int32Value());
  j->ssl = SSL_new(c->ctx);
  if (j->plain < 0 || j->tls < 0 || !j->ssl) {
    std::string err = j->ssl ? std::string("dup: ") + std::strerror(errno) : SslError("SSL_new");
    if (j->plain >= 0) close(j->plain);
    if (j->tls >= 0) close(j->tls);
    SSL_free(j->ssl);
    delete j;
    Napi::Error::New(env, err).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (!c->server && !c->host.empty()) {
    SSL_set_tlsext_host_name(j->ssl, c->host.c_str());
    SSL_set1_host(j->ssl, c->host.c_str());
  }
  j->done = Napi::ThreadSafeFunction::New(env, info[3].As<Napi::Function>(), "native-relay", 0, 1);
  std::thread(Run, j).detach();
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("createContext", Napi::Function::New(env, CreateContext));
  exports.Set("relay", Napi::Function::New(env, Relay));
  exports.Set("openssl", Napi::String::New(env, OpenSSL_version(OPENSSL_VERSION)));
  return exports;
}

}  // namespace

NODE_API_MODULE(native_relay, Init)
