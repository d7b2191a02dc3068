// SPDX-License-Identifier: Apache-2.0
#include "common/error.h"

#include <cerrno>
#include <cstring>

namespace rabbit {

Error bad_input(const std::string& file, const std::string& what) {
    return Error(ExitCode::bad_input, file + ": " + what);
}

Error unsupported(const std::string& file, const std::string& what) {
    return Error(ExitCode::unsupported, file + ": " + what);
}

Error output_error(const std::string& file, const std::string& what) {
    return Error(ExitCode::output, file + ": " + what);
}

Error network_error(const std::string& what) {
    return Error(ExitCode::network, what);
}

std::string errno_text(int err) {
    const char* name = nullptr;
    switch (err) {
    case ENOSPC: name = "ENOSPC"; break;
    case EDQUOT: name = "EDQUOT"; break;
    case EACCES: name = "EACCES"; break;
    case EPERM: name = "EPERM"; break;
    case ENOENT: name = "ENOENT"; break;
    case EIO: name = "EIO"; break;
    case EROFS: name = "EROFS"; break;
    case EISDIR: name = "EISDIR"; break;
    case ENOTDIR: name = "ENOTDIR"; break;
    case EEXIST: name = "EEXIST"; break;
    case EXDEV: name = "EXDEV"; break;
    default: break;
    }
    std::string text = std::strerror(err);
    if (name) text += std::string(" (") + name + ")";
    return text;
}

void fail_internal(const char* expr, const char* file, int line, const std::string& msg) {
    throw Error(ExitCode::internal, std::string("internal error: ") + msg + " [" + expr + " at " + file +
                                        ":" + std::to_string(line) + "]");
}

} // namespace rabbit
