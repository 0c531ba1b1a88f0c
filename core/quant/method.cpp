#include "core/quant/method.h"

#include "core/quant/format.h"
#include "core/quant/gptq.h"
#include "core/util/strings.h"

namespace qs {

namespace {

struct MethodTraits {
    QuantMethod method;
    const char* name;
    const char* label;
};
constexpr MethodTraits kMethods[] = {
    {QuantMethod::Rtn, "rtn", "RTN"},
    {QuantMethod::Gptq, "gptq", "GPTQ"},
    {QuantMethod::Awq, "awq", "AWQ"},
};

const MethodTraits& traits(QuantMethod method)
{
    for (const auto& t : kMethods)
        if (t.method == method)
            return t;
    return kMethods[0];
}

} // namespace

const char* quantMethodName(QuantMethod method)
{
    return traits(method).name;
}

const char* quantMethodLabel(QuantMethod method)
{
    return traits(method).label;
}

std::optional<QuantMethod> quantMethodFromName(std::string_view name)
{
    const std::string n = lower(name);
    if (n == "round-to-nearest")
        return QuantMethod::Rtn;
    for (const auto& t : kMethods)
        if (n == t.name)
            return t.method;
    return std::nullopt;
}

std::string quantMethodProblem(QuantMethod method, std::string_view format)
{
    if (method == QuantMethod::Rtn)
        return {};
    const auto f = findFormat(std::string(format));
    if (!f)
        return "unknown format '" + std::string(format) + "'";
    const FormatKind kind = f->traits().kind;
    if (method == QuantMethod::Gptq && kind == FormatKind::Ggml && !gptqConfigForFormat(f->traits().name))
        return std::string("GPTQ rounds into the block grids of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K-Q6_K, IQ4_NL "
                           "and IQ4_XS; ") +
               f->traits().name + " is not one of them";
    if (method == QuantMethod::Gptq && kind != FormatKind::Ggml && !gptqConfigForFormat(f->traits().name))
        return std::string("GPTQ chooses integer codes group by group or ggml levels block by block; ") +
               f->traits().name + (kind == FormatKind::Integer ? " has one scale per tensor" : " is not an integer format");
    if (method == QuantMethod::Awq && kind == FormatKind::Float)
        return std::string("AWQ scales channels before quantizing; ") + f->traits().name +
               " is not quantized, so scaling changes nothing";
    return {};
}

} // namespace qs
