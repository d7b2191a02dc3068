// SPDX-License-Identifier: Apache-2.0
#include "fake_hub.h"

#include "common/error.h"
#include "common/file_io.h"
#include "hub/digest.h"

#include <arpa/inet.h>
#include <chrono>
#include <cstring>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace rabbit::fakehub {

std::string etag_of(const RepoFile& f) { return f.lfs ? sha256_hex(f.content) : git_blob_sha1_hex(f.content); }

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

void list_files(const std::string& dir, const std::string& prefix, std::vector<std::string>& out) {
    for (const std::string& name : list_directory(dir)) {
        const std::string full = join_path(dir, name);
        if (is_directory(full)) list_files(full, prefix + name + "/", out);
        else out.push_back(prefix + name);
    }
}

bool send_all(int fd, const char* p, size_t n) {
    while (n > 0) {
        const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return false;
        p += w;
        n -= size_t(w);
    }
    return true;
}

} // namespace

Repo repo_from_directory(const std::string& id, const std::string& dir) {
    Repo r;
    r.id = id;
    std::vector<std::string> paths;
    list_files(dir, "", paths);
    for (const std::string& p : paths) {
        RepoFile f;
        f.path = p;
        f.content = read_text_file(join_path(dir, p), 1ull << 36);
        f.lfs = ends_with(p, ".safetensors") || ends_with(p, ".gguf") || ends_with(p, ".bin") || f.content.size() > (1u << 20);
        r.files.push_back(std::move(f));
    }
    r.commit = commit_of(r);
    return r;
}

std::string commit_of(const Repo& repo) {
    std::string all = repo.id;
    for (const RepoFile& f : repo.files) all += "\n" + f.path + " " + etag_of(f);
    return git_blob_sha1_hex(all);
}

FakeHub::FakeHub(uint16_t port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    RABBIT_CHECK(listen_fd_ >= 0, "socket failed");
    const int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 64) != 0)
        throw Error(ExitCode::usage, "fake hub: cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + errno_text(errno));
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
}

FakeHub::~FakeHub() {
    stop_ = true;
    acceptor_.join();
    ::close(listen_fd_);
    std::vector<std::thread> workers;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        workers.swap(workers_);
    }
    for (std::thread& t : workers) t.join();
}

void FakeHub::add_repo(Repo repo) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (repo.commit.empty()) repo.commit = commit_of(repo);
    repos_[repo.id] = std::move(repo);
}

std::vector<std::string> FakeHub::requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return log_;
}

void FakeHub::accept_loop() {
    while (!stop_) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        std::lock_guard<std::mutex> lock(mutex_);
        workers_.emplace_back([this, fd] { serve(fd); });
    }
}

void FakeHub::serve(int fd) {
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos && req.size() < 65536) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, size_t(n));
    }
    const size_t line_end = req.find("\r\n");
    if (line_end == std::string::npos) {
        ::close(fd);
        return;
    }
    const std::string line = req.substr(0, line_end);
    const size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
    const std::string method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::map<std::string, std::string> headers;
    for (size_t at = line_end + 2; at < req.size();) {
        const size_t end = req.find("\r\n", at);
        if (end == std::string::npos || end == at) break;
        const std::string h = req.substr(at, end - at);
        const size_t colon = h.find(':');
        if (colon != std::string::npos) {
            std::string name = h.substr(0, colon);
            for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
            headers[name] = h.substr(h.find_first_not_of(' ', colon + 1));
        }
        at = end + 2;
    }
    {
        std::lock_guard<std::mutex> lock(mutex_);
        log_.push_back(method + " " + target + (headers.count("authorization") ? " authorization=" + headers["authorization"] : ""));
    }
    Response r = route(method, target, headers);
    std::string head = "HTTP/1.1 " + std::to_string(r.status) + " X\r\nConnection: close\r\nAccept-Ranges: bytes\r\n";
    for (const auto& [k, v] : r.headers) head += k + ": " + v + "\r\n";
    head += "Content-Length: " + std::to_string(r.body.size()) + "\r\n\r\n";
    if (method == "HEAD") send_all(fd, head.data(), head.size());
    else {
        if (r.is_file && r.lfs) {
            int c = faults_.corrupt.load();
            while (c > 0 && !faults_.corrupt.compare_exchange_weak(c, c - 1)) {}
            if (c > 0 && !r.body.empty()) r.body[r.body.size() / 2] ^= 0x5a;
        }
        send_body(fd, head, r.body, r.is_file);
    }
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
}

void FakeHub::send_body(int fd, const std::string& head, const std::string& body, bool is_file) {
    if (!send_all(fd, head.data(), head.size())) return;
    uint64_t limit = body.size();
    if (is_file) {
        int d = faults_.drops.load();
        while (d > 0 && !faults_.drops.compare_exchange_weak(d, d - 1)) {}
        if (d > 0) limit = std::min<uint64_t>(limit, faults_.drop_after.load());
    }
    const size_t chunk = 16384;
    for (uint64_t at = 0; at < limit && !stop_; at += chunk) {
        const size_t n = size_t(std::min<uint64_t>(chunk, limit - at));
        if (!send_all(fd, body.data() + at, n)) return;
        served_ += n;
        if (const uint64_t bps = faults_.bytes_per_second.load(); bps > 0 && is_file)
            std::this_thread::sleep_for(std::chrono::microseconds(uint64_t(1e6 * double(n) / double(bps))));
    }
}

} // namespace rabbit::fakehub
