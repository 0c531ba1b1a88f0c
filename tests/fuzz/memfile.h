#pragma once
// The fuzz input as a file the loaders can open by path: an anonymous memory file (memfd), reachable as
// /proc/self/fd/N, closed when the MemFile goes out of scope.

#include <cstddef>
#include <cstdint>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

class MemFile {
public:
    MemFile(const char* name, const uint8_t* data, size_t size) : m_fd(memfd_create(name, MFD_CLOEXEC))
    {
        size_t written = 0;
        while (m_fd >= 0 && written < size) {
            const ssize_t n = ::write(m_fd, data + written, size - written);
            if (n <= 0)
                break;
            written += static_cast<size_t>(n);
        }
    }
    ~MemFile()
    {
        if (m_fd >= 0)
            ::close(m_fd);
    }
    MemFile(const MemFile&) = delete;
    MemFile& operator=(const MemFile&) = delete;

    bool ok() const { return m_fd >= 0; }
    std::string path() const { return "/proc/self/fd/" + std::to_string(m_fd); }

private:
    int m_fd;
};
