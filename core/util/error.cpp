#include "core/util/error.h"

namespace qs {

const char* errorCodeName(ErrorCode code)
{
    switch (code) {
    case ErrorCode::Io: return "io";
    case ErrorCode::Truncated: return "truncated";
    case ErrorCode::BadMagic: return "bad-magic";
    case ErrorCode::BadVersion: return "bad-version";
    case ErrorCode::BadValue: return "bad-value";
    case ErrorCode::Overflow: return "overflow";
    case ErrorCode::Unsupported: return "unsupported";
    case ErrorCode::Cancelled: return "cancelled";
    case ErrorCode::Crashed: return "crashed";
    case ErrorCode::Internal: return "internal";
    }
    return "unknown";
}

Error::Error(ErrorCode code, std::string message)
    : std::runtime_error(std::move(message)), m_code(code)
{
}

static std::string formatMessage(const std::string& file, const std::string& field,
                                 std::optional<uint64_t> offset, const std::string& message)
{
    std::string s = file.empty() ? std::string() : file + ": ";
    if (!field.empty())
        s += field;
    if (offset)
        s += " at byte " + std::to_string(*offset);
    if (!field.empty() || offset)
        s += ": ";
    return s + message;
}

FormatError::FormatError(ErrorCode code, std::string file, std::string field, std::optional<uint64_t> offset,
                         std::string message)
    : Error(code, formatMessage(file, field, offset, message)), m_file(std::move(file)),
      m_field(std::move(field)), m_offset(offset), m_detail(std::move(message))
{
}

} // namespace qs
