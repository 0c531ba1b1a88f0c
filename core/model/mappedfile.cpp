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

namespace {

// Maps `size` bytes of fd (nothing for 0); throws qs::Error(Io) naming `path`.
const std::byte* mapWhole(int fd, uint64_t size, const std::filesystem::path& path)
{
    if (size == 0)
        return nullptr;
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        throw Error(ErrorCode::Io, path.string() + ": cannot map: " + std::strerror(errno));
    return static_cast<const std::byte*>(p);
}

} // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::filesystem::path& path)
{
    uint64_t size = 0;
    const int fd = openRegularFile(path, &size); // never blocks on a FIFO; refuses devices and folders
    std::shared_ptr<MappedFile> file(new MappedFile());
    file->m_path = path;
    file->m_size = size;
    try {
        file->m_data = mapWhole(fd, size, path);
    } catch (...) {
        ::close(fd);
        throw;
    }
    ::close(fd);
    return file;
}

std::shared_ptr<MappedFile> MappedFile::fromDescriptor(int fd, const std::filesystem::path& name)
{
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        throw Error(ErrorCode::Io, name.string() + ": not a regular file");
    std::shared_ptr<MappedFile> file(new MappedFile());
    file->m_path = name;
    file->m_size = uint64_t(st.st_size);
    file->m_data = mapWhole(fd, file->m_size, name);
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
