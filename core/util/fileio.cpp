#include "core/util/fileio.h"

#include "core/util/error.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace qs {

namespace {
const char* kindOf(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a folder";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode) || S_ISBLK(mode))
        return "a device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "not a regular file";
}
} // namespace

int openRegularFile(const std::filesystem::path& path, uint64_t* size)
{
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        throw FormatError(ErrorCode::Io, path.string(), "file", std::nullopt,
                          std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        const mode_t mode = st.st_mode;
        ::close(fd);
        throw FormatError(ErrorCode::Io, path.string(), "file", std::nullopt,
                          std::string("not a regular file (") + kindOf(mode) + ")");
    }
    // Regular files never block; clear the flag so reads behave as usual.
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0)
        ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    if (size)
        *size = uint64_t(st.st_size);
    return fd;
}

std::string readRegularFile(const std::filesystem::path& path, uint64_t maxBytes, const std::string& what)
{
    uint64_t size = 0;
    const int fd = openRegularFile(path, &size);
    if (size > maxBytes) {
        ::close(fd);
        throw FormatError(ErrorCode::BadValue, path.string(), what, std::nullopt,
                          std::to_string(size) + " bytes exceed the limit of " + std::to_string(maxBytes >> 20) +
                              " MiB");
    }
    std::string data(size_t(size), '\0');
    size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::read(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            const int err = n < 0 ? errno : 0;
            ::close(fd);
            throw FormatError(ErrorCode::Io, path.string(), what, done,
                              err ? std::string("cannot read: ") + std::strerror(err)
                                  : std::string("the file shrank while being read"));
        }
        done += size_t(n);
    }
    ::close(fd);
    return data;
}

std::optional<std::string> readCacheFile(const std::filesystem::path& path, uint64_t maxBytes)
{
    std::error_code ec;
    if (path.empty() || !std::filesystem::exists(path, ec))
        return std::nullopt;
    try {
        return readRegularFile(path, maxBytes, "cache");
    } catch (const Error&) {
        return std::nullopt;
    }
}

} // namespace qs
