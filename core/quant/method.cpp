#include "core/quant/method.h"

#include <algorithm>
#include <cctype>
#include <string>

namespace qs {

const char* quantMethodName(QuantMethod method)
{
    switch (method) {
    case QuantMethod::Rtn:
        return "rtn";
    case QuantMethod::Awq:
        return "awq";
    case QuantMethod::Gptq:
        return "gptq";
    }
    return "?";
}

std::optional<QuantMethod> quantMethodFromName(std::string_view name)
{
    std::string key(name);
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return char(std::tolower(c)); });
    for (auto m : {QuantMethod::Rtn, QuantMethod::Awq, QuantMethod::Gptq})
        if (key == quantMethodName(m))
            return m;
    return std::nullopt;
}

} // namespace qs
