#include "core/util/namepattern.h"

#include "core/util/error.h"

#include <re2/re2.h>

namespace qs {

namespace {
std::unique_ptr<re2::RE2> compile(const std::string& pattern, std::string* why)
{
    if (pattern.size() > kMaxPatternLength) {
        *why = "longer than " + std::to_string(kMaxPatternLength) + " characters";
        return nullptr;
    }
    re2::RE2::Options options;
    options.set_log_errors(false);
    options.set_max_mem(8 << 20); // bounds the compiled program of a hostile pattern
    auto re = std::make_unique<re2::RE2>(pattern, options);
    if (re->ok())
        return re;
    const re2::RE2::ErrorCode code = re->error_code();
    if (code == re2::RE2::ErrorBadEscape && pattern.find('\\') != std::string::npos &&
        re->error_arg().size() == 2 && re->error_arg()[1] >= '1' && re->error_arg()[1] <= '9')
        *why = "back-references (" + re->error_arg() +
               ") are not supported: rules match in linear time, which back-references cannot";
    else if (code == re2::RE2::ErrorRepeatSize || code == re2::RE2::ErrorPatternTooLarge)
        *why = "too complex (" + re->error() + ")";
    else if (code == re2::RE2::ErrorMissingParen && pattern.find("(?") != std::string::npos)
        *why = re->error() + " (look-around assertions are not supported)";
    else
        *why = re->error();
    return nullptr;
}
} // namespace

NamePattern::NamePattern(const std::string& pattern) : m_pattern(pattern)
{
    std::string why;
    m_re = compile(pattern, &why);
    if (!m_re)
        throw Error(ErrorCode::BadValue, "invalid regular expression '" + pattern.substr(0, 200) + "': " + why);
}

NamePattern::~NamePattern() = default;
NamePattern::NamePattern(NamePattern&&) noexcept = default;
NamePattern& NamePattern::operator=(NamePattern&&) noexcept = default;

bool NamePattern::search(std::string_view name) const
{
    return re2::RE2::PartialMatch(re2::StringPiece(name.data(), name.size()), *m_re);
}

std::string NamePattern::check(const std::string& pattern)
{
    std::string why;
    return compile(pattern, &why) ? std::string() : why;
}

} // namespace qs
