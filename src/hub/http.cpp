// SPDX-License-Identifier: Apache-2.0
#include "hub/http.h"

#include "common/error.h"
#include "common/fault.h"
#include "common/interrupt.h"

#include <curl/curl.h>

#include <cctype>
#include <cerrno>
#include <mutex>
#include <unistd.h>

namespace rabbit {

namespace {

struct Sink {
    HttpReply* reply;
    int fd = -1;                // -1: the body goes to reply->body
    const std::function<bool(uint64_t)>* on_bytes = nullptr;
    uint64_t offset = 0;        // where a range request started: a 200 answer restarts the file
    int write_errno = 0;
    bool aborted = false;
    bool started = false;
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
    Sink& s = *static_cast<Sink*>(user);
    std::string line(data, size * n);
    // A new response (after a redirect) starts with its status line: forget the last one's headers.
    if (line.rfind("HTTP/", 0) == 0) s.reply->headers.clear();
    const size_t colon = line.find(':');
    if (colon != std::string::npos) {
        std::string name = line.substr(0, colon), value = line.substr(colon + 1);
        for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
        while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) value.erase(0, 1);
        while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) value.pop_back();
        s.reply->headers[name] = value;
    }
    return size * n;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
    Sink& s = *static_cast<Sink*>(user);
    const size_t bytes = size * n;
    if (s.fd < 0) {
        if (s.reply->body.size() + bytes > (64u << 20)) return 0; // an API answer is never this big
        s.reply->body.append(data, bytes);
        return bytes;
    }
    // Error pages (4xx, 5xx) go to memory, never into the file being downloaded.
    if (s.reply->status == 0 || s.reply->status >= 300) {
        s.reply->body.append(data, std::min<size_t>(bytes, 4096));
        return bytes;
    }
    if (!s.started) {
        s.started = true;
        // The server ignored the range and sends the whole file: it replaces the partial one.
        if (s.offset > 0 && s.reply->status == 200 && (::ftruncate(s.fd, 0) != 0 || ::lseek(s.fd, 0, SEEK_SET) != 0)) {
            s.write_errno = errno;
            return 0;
        }
    }
    for (size_t done = 0; done < bytes;) {
        int fault_err = 0; // RABBIT_FAULT's full disk or kill, as for every other output
        const size_t allowed = fault_allow_write(bytes - done, &fault_err);
        if (allowed == 0) {
            s.write_errno = fault_err;
            return 0;
        }
        const ssize_t w = ::write(s.fd, data + done, allowed);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            s.write_errno = w < 0 ? errno : ENOSPC;
            return 0;
        }
        done += size_t(w);
    }
    if (s.on_bytes && *s.on_bytes && !(*s.on_bytes)(bytes)) {
        s.aborted = true;
        return 0;
    }
    return bytes;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    Sink& s = *static_cast<Sink*>(user);
    if (interrupted()) {
        s.aborted = true;
        return 1;
    }
    return 0;
}

TransferFailure::Kind kind_of(CURLcode c) {
    switch (c) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT: return TransferFailure::Kind::no_network;
    case CURLE_WRITE_ERROR: return TransferFailure::Kind::write_error;
    case CURLE_ABORTED_BY_CALLBACK: return TransferFailure::Kind::aborted;
    default: return TransferFailure::Kind::dropped;
    }
}

} // namespace

HttpClient::HttpClient(std::string token) {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    if (!token.empty()) auth_header_ = "Authorization: Bearer " + token;
    curl_ = curl_easy_init();
    RABBIT_CHECK(curl_ != nullptr, "curl_easy_init failed");
    if (const char* s = std::getenv("RABBIT_HUB_STALL_S"); s && *s) stall_s_ = std::max(1L, std::atol(s));
}

HttpClient::~HttpClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

HttpReply HttpClient::get(const std::string& url, TransferFailure& failure, bool head) {
    return perform(url, "", 0, -1, head, {}, failure);
}

HttpReply HttpClient::get_range(const std::string& url, uint64_t first, uint64_t last, TransferFailure& failure) {
    return perform(url, std::to_string(first) + "-" + std::to_string(last), 0, -1, false, {}, failure);
}

HttpReply HttpClient::fetch_range(const std::string& url, uint64_t offset, int fd, const std::function<bool(uint64_t)>& on_bytes,
                                  TransferFailure& failure) {
    return perform(url, offset > 0 ? std::to_string(offset) + "-" : "", offset, fd, false, on_bytes, failure);
}

HttpReply HttpClient::perform(const std::string& url, const std::string& range, uint64_t offset, int fd, bool head,
                              const std::function<bool(uint64_t)>& on_bytes, TransferFailure& failure) {
    CURL* c = static_cast<CURL*>(curl_);
    curl_easy_reset(c);
    HttpReply reply;
    Sink sink{&reply, fd, &on_bytes};
    sink.offset = offset;
    curl_slist* headers = nullptr;
    if (!auth_header_.empty()) headers = curl_slist_append(headers, auth_header_.c_str());
    headers = curl_slist_append(headers, "Accept-Encoding: identity"); // sizes and checksums are of the raw bytes
    headers = curl_slist_append(headers, "User-Agent: rabbit/" RABBIT_VERSION);
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, stall_s_);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &sink);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &sink);
    if (head) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (!range.empty()) curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
    // The status is known before the body: on_body needs it to keep error pages out of the file.
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, +[](char* d, size_t s, size_t n, void* u) -> size_t {
        Sink& k = *static_cast<Sink*>(u);
        const std::string line(d, s * n);
        if (line.rfind("HTTP/", 0) == 0) {
            const size_t sp = line.find(' ');
            k.reply->status = sp == std::string::npos ? 0 : std::atol(line.c_str() + sp + 1);
        }
        return on_header(d, s, n, u);
    });
    const CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(headers);
    if (rc == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        reply.status = status;
        return reply;
    }
    failure.kind = kind_of(rc);
    if (sink.aborted) failure.kind = TransferFailure::Kind::aborted;
    if (sink.write_errno) {
        failure.kind = TransferFailure::Kind::write_error;
        failure.write_errno = sink.write_errno;
    }
    failure.text = curl_easy_strerror(rc);
    reply.status = 0;
    return reply;
}

} // namespace rabbit
