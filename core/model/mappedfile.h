#pragma once
// A read-only memory map of a whole file. Models are never copied into RAM; tensors are views into maps.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>

namespace qs {

class MappedFile {
public:
    // Throws qs::Error(Io) when the file cannot be opened or mapped. Empty files map to an empty span.
    static std::shared_ptr<MappedFile> open(const std::filesystem::path& path);
    // Maps an open descriptor of a file this process wrote (an unlinked temporary file); `name` is what
    // messages call it. The descriptor stays open: the caller closes it (the mapping outlives it).
    static std::shared_ptr<MappedFile> fromDescriptor(int fd, const std::filesystem::path& name);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const std::filesystem::path& path() const { return m_path; }
    uint64_t size() const { return m_size; }
    const std::byte* data() const { return m_data; }
    std::span<const std::byte> bytes() const { return {m_data, static_cast<size_t>(m_size)}; }
    // Bounds-checked sub-range; throws qs::FormatError(Truncated) naming `field` when out of range.
    std::span<const std::byte> range(uint64_t offset, uint64_t length, const char* field) const;
    // Hint the kernel about access patterns for a range (no-op on failure).
    void adviseSequential(uint64_t offset, uint64_t length) const;
    void adviseWillNeed(uint64_t offset, uint64_t length) const;

private:
    MappedFile() = default;
    std::filesystem::path m_path;
    const std::byte* m_data = nullptr;
    uint64_t m_size = 0;
};

} // namespace qs
