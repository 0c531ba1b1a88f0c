#include "core/util/atomicfile.h"

#include "core/util/error.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace qs {

namespace {
std::atomic<uint64_t> g_failAfter{0};

[[noreturn]] void fail(const std::filesystem::path& file, const std::string& what, int err)
{
    throw Error(ErrorCode::Io, file.string() + ": " + what + ": " + std::strerror(err));
}

std::filesystem::path folderOf(const std::filesystem::path& p)
{
    const auto parent = p.parent_path();
    return parent.empty() ? std::filesystem::path(".") : parent;
}

void syncFolder(const std::filesystem::path& file)
{
    const int dfd = ::open(folderOf(file).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        fail(folderOf(file), "cannot open folder to sync", errno);
    const int rc = ::fsync(dfd);
    const int err = errno;
    ::close(dfd);
    if (rc != 0 && err != EINVAL) // some filesystems cannot sync a folder
        fail(folderOf(file), "cannot sync folder", err);
}
} // namespace

void AtomicFile::setFailAfterBytesForTesting(uint64_t bytes)
{
    g_failAfter.store(bytes);
}

AtomicFile::AtomicFile(std::filesystem::path destination) : m_destination(std::move(destination))
{
    for (int attempt = 0; attempt < 16 && m_fd < 0; ++attempt) {
        m_temporary = temporaryPathBeside(m_destination);
        m_fd = ::open(m_temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (m_fd < 0 && errno != EEXIST)
            fail(m_destination, "cannot create a temporary file beside it", errno);
    }
    if (m_fd < 0)
        fail(m_destination, "cannot create a temporary file beside it", EEXIST);
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : m_destination(std::move(other.m_destination)), m_temporary(std::move(other.m_temporary)),
      m_fd(other.m_fd), m_written(other.m_written), m_committed(other.m_committed)
{
    other.m_fd = -1;
    other.m_committed = true; // the moved-from object owns nothing
}

AtomicFile::~AtomicFile()
{
    if (m_fd >= 0)
        ::close(m_fd);
    if (!m_committed && !m_temporary.empty())
        ::unlink(m_temporary.c_str());
}

void AtomicFile::write(const void* data, size_t size)
{
    if (m_fd < 0)
        fail(m_destination, "write after close", EBADF);
    const uint64_t limit = g_failAfter.load();
    if (limit && m_written + size > limit)
        fail(m_destination, "cannot write", ENOSPC);
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
        const ssize_t n = ::write(m_fd, p, std::min<size_t>(size, size_t(1) << 30));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail(m_destination, "cannot write", errno);
        }
        if (n == 0)
            fail(m_destination, "cannot write", EIO);
        p += n;
        size -= size_t(n);
        m_written += uint64_t(n);
    }
}

void AtomicFile::writeZeros(uint64_t count)
{
    static const char zeros[4096] = {};
    while (count > 0) {
        const size_t n = size_t(std::min<uint64_t>(count, sizeof zeros));
        write(zeros, n);
        count -= n;
    }
}

void AtomicFile::sync()
{
    if (m_fd < 0)
        return;
    if (::fsync(m_fd) != 0)
        fail(m_destination, "cannot sync", errno);
    const int rc = ::close(m_fd);
    m_fd = -1;
    if (rc != 0)
        fail(m_destination, "cannot close", errno);
}

void AtomicFile::renameIntoPlace()
{
    if (::rename(m_temporary.c_str(), m_destination.c_str()) != 0)
        fail(m_destination, "cannot rename the temporary file into place", errno);
    m_committed = true;
}

void AtomicFile::commit()
{
    sync();
    renameIntoPlace();
    syncFolder(m_destination);
}

AtomicFile& AtomicFileSet::add(const std::filesystem::path& destination)
{
    m_files.push_back(std::make_unique<AtomicFile>(destination));
    return *m_files.back();
}

void AtomicFileSet::commit()
{
    for (auto& f : m_files)
        f->sync();
    size_t renamed = 0;
    try {
        for (; renamed < m_files.size(); ++renamed)
            m_files[renamed]->renameIntoPlace();
    } catch (...) {
        for (size_t i = 0; i < renamed; ++i)
            ::unlink(m_files[i]->destination().c_str());
        throw;
    }
    if (!m_files.empty())
        syncFolder(m_files.front()->destination());
}

std::filesystem::path temporaryPathBeside(const std::filesystem::path& destination)
{
    std::random_device rd;
    char suffix[32];
    std::snprintf(suffix, sizeof suffix, ".%08x.tmp", unsigned(rd()));
    return folderOf(destination) / ("." + destination.filename().string() + suffix);
}

void commitTemporaryFile(const std::filesystem::path& temporary, const std::filesystem::path& destination)
{
    try {
        const int fd = ::open(temporary.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            fail(destination, "the written file is missing", errno);
        struct stat st {};
        const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
        const int rc = ::fsync(fd);
        const int err = errno;
        ::close(fd);
        if (!regular)
            fail(destination, "the written file is not a regular file", EINVAL);
        if (rc != 0)
            fail(destination, "cannot sync", err);
        if (::rename(temporary.c_str(), destination.c_str()) != 0)
            fail(destination, "cannot rename the temporary file into place", errno);
    } catch (...) {
        ::unlink(temporary.c_str());
        throw;
    }
    syncFolder(destination);
}

void writeFileAtomically(const std::filesystem::path& destination, std::string_view contents)
{
    AtomicFile file(destination);
    file.write(contents);
    file.commit();
}

uint64_t freeDiskBytes(const std::filesystem::path& path)
{
    struct statvfs st {};
    std::error_code ec;
    const std::filesystem::path probe =
        std::filesystem::is_directory(path, ec) ? path : folderOf(path);
    if (::statvfs(probe.c_str(), &st) != 0)
        return UINT64_MAX;
    return uint64_t(st.f_bavail) * uint64_t(st.f_frsize);
}

} // namespace qs
