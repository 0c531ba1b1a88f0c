#pragma once
// Regular expressions over tensor names (plan rules, --tensor filters). Patterns come from files and
// command lines and names from model files, so both are hostile: matching uses RE2, which runs in time
// linear in the name and never recurses on it, so `^(.*.*)*X$` against a megabyte-long name neither hangs
// nor overflows the stack. The price is RE2's syntax: no back-references or look-around (refused with a
// clear message). Otherwise the usual ECMAScript/Perl syntax: `blk\.\d+\.attn_(q|k|v)\.weight`.

#include <memory>
#include <string>
#include <string_view>

namespace re2 {
class RE2;
}

namespace qs {

inline constexpr size_t kMaxPatternLength = 4096;

class NamePattern {
public:
    // Throws qs::Error(BadValue) naming the pattern and what is wrong with it.
    explicit NamePattern(const std::string& pattern);
    ~NamePattern();
    NamePattern(NamePattern&&) noexcept;
    NamePattern& operator=(NamePattern&&) noexcept;

    const std::string& pattern() const { return m_pattern; }
    // Whether the pattern matches anywhere in `name` (anchor with ^...$ for whole names).
    bool search(std::string_view name) const;

    // Empty when `pattern` compiles, else the reason (for validating without throwing).
    static std::string check(const std::string& pattern);

private:
    std::string m_pattern;
    std::unique_ptr<re2::RE2> m_re;
};

} // namespace qs
