#include "core/model/mappedfile.h"

#include "core/util/fileio.h"

#include "core/util/checked.h"
#include "core/util/error.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace qs {

std::shared_ptr<MappedFile> MappedFile::open(const std::filesystem::path& path)
{
    uint64_t size = 0;
    const int fd = openRegularFile(path, &size); // never blocks on a FIFO; refuses devices and folders
    std::shared_ptr<MappedFile> file(new MappedFile());
    file->m_path = path;
    file->m_size = size;
    if (file->m_size > 0) {
        void* p = ::mmap(nullptr, file->m_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            const int err = errno;
            ::close(fd);
            throw Error(ErrorCode::Io, path.string() + ": cannot map: " + std::strerror(err));
        }
        file->m_data = static_cast<const std::byte*>(p);
    }
    ::close(fd);
    return file;
}

MappedFile::~MappedFile()
{
    if (m_data)
        ::munmap(const_cast<std::byte*>(m_data), m_size);
}

std::span<const std::byte> MappedFile::range(uint64_t offset, uint64_t length, const char* field) const
{
    const auto end = checkedAdd(offset, length);
    if (!end || *end > m_size)
        throw FormatError(ErrorCode::Truncated, m_path.string(), field, offset,
                          "needs " + std::to_string(length) + " bytes but the file has " + std::to_string(m_size));
    return {m_data + offset, static_cast<size_t>(length)};
}

static void advise(const std::byte* base, uint64_t size, uint64_t offset, uint64_t length, int advice)
{
    if (!base || offset >= size)
        return;
    length = std::min(length, size - offset);
    const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    const uint64_t start = offset / page * page;
    ::madvise(const_cast<std::byte*>(base) + start, offset + length - start, advice);
}

void MappedFile::adviseSequential(uint64_t offset, uint64_t length) const
{
    advise(m_data, m_size, offset, length, MADV_SEQUENTIAL);
}

void MappedFile::adviseWillNeed(uint64_t offset, uint64_t length) const
{
    advise(m_data, m_size, offset, length, MADV_WILLNEED);
}

} // namespace qs
