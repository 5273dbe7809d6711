#include "registry/http.h"

#include <curl/curl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <mutex>

#include "common/fs.h"

namespace isola {

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
  const HttpRequest* req;
  HttpResponse* resp;
  bool overflow = false;
  bool aborted = false;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  // The body of a redirect or an error status is not the content.
  if (t->req->sink && t->resp->status >= 200 && t->resp->status < 300) {
    if (!t->req->sink(t->resp->status, data, len)) {
      t->aborted = true;
      return 0;
    }
    return len;
  }
  if (t->resp->body.size() + len > t->req->max_body) {
    t->overflow = true;
    return 0;
  }
  t->resp->body.append(data, len);
  return len;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  std::string line(data, len);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (line.starts_with("HTTP/")) {
    // A new response (after a redirect or 100-continue): start over.
    t->resp->headers.clear();
    size_t sp = line.find(' ');
    t->resp->status = sp == std::string::npos ? 0 : std::strtol(line.c_str() + sp + 1, nullptr, 10);
    return len;
  }
  size_t colon = line.find(':');
  if (colon == std::string::npos) return len;
  std::string name = line.substr(0, colon);
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  size_t v = line.find_first_not_of(" \t", colon + 1);
  t->resp->headers[name] = v == std::string::npos ? "" : line.substr(v);
  return len;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t ultotal, curl_off_t ulnow) {
  auto* t = static_cast<Transfer*>(user);
  if (ultotal > 0) t->req->upload_progress(static_cast<uint64_t>(ulnow), static_cast<uint64_t>(ultotal));
  return 0;
}

TransportFailure classify(CURLcode code) {
  switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
      return TransportFailure::tls_handshake;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
      return TransportFailure::tls_verify;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
      return TransportFailure::connect;
    default:
      return TransportFailure::other;
  }
}

struct CurlFree {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistFree {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
struct FileClose {
  void operator()(FILE* f) const { std::fclose(f); }
};

}  // namespace

std::string HttpResponse::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

std::expected<HttpResponse, HttpError> Http::send(const HttpRequest& req) const {
  global_init();
  auto failed = [&](Error e, TransportFailure kind = TransportFailure::other) {
    return std::unexpected(HttpError{std::move(e), kind});
  };
  std::unique_ptr<CURL, CurlFree> curl(curl_easy_init());
  if (!curl) return failed(make_error("http", req.url, "cannot create a libcurl handle"));
  CURL* c = curl.get();
  HttpResponse resp;
  Transfer t{&req, &resp};
  std::unique_ptr<curl_slist, SlistFree> headers;
  for (const std::string& h : req.headers) headers.reset(curl_slist_append(headers.release(), h.c_str()));
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_USERAGENT, "isola/" ISOLA_VERSION);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
  // A stalled transfer (under 1 byte/s for a minute) fails rather than hangs.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, req.follow_redirects ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, tls_.verify ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, tls_.verify ? 2L : 0L);
  if (!tls_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, tls_.ca_file.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);

  std::unique_ptr<FILE, FileClose> upload;
  if (!req.upload_path.empty()) {
    upload.reset(std::fopen(req.upload_path.c_str(), "rb"));
    if (!upload) return failed(sys_error("open", req.upload_path));
    struct stat st;
    if (::fstat(fileno(upload.get()), &st) != 0) return failed(sys_error("stat", req.upload_path));
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_READDATA, upload.get());
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(st.st_size));
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    if (req.upload_progress) {
      curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
      curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
      curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    }
  } else if (req.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  }

  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  CURLcode code = curl_easy_perform(c);
  if (t.overflow)
    return failed(make_error(req.method, req.url,
                             "the response is larger than " + std::to_string(req.max_body >> 20) + " MiB"));
  if (t.aborted) return failed(make_error(req.method, req.url, "transfer stopped"));
  if (code != CURLE_OK) {
    std::string why = errbuf[0] ? errbuf : curl_easy_strerror(code);
    return failed(make_error(req.method, req.url, why), classify(code));
  }
  char* effective = nullptr;
  curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &effective);
  resp.url = effective ? effective : req.url;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  return resp;
}

std::string url_escape(const std::string& text) {
  std::string out;
  for (unsigned char ch : text) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out += static_cast<char>(ch);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", ch);
      out += buf;
    }
  }
  return out;
}

}  // namespace isola
