#include "core/stats/moments.h"

#include <algorithm>

namespace qs {

Moments Moments::fromShiftedSums(double n, double shift, double s1, double s2, double s3, double s4)
{
    Moments m;
    if (n <= 0)
        return m;
    const double d = s1 / n; // mean − shift
    const double d2 = d * d;
    m.n = n;
    m.mean = shift + d;
    m.m2 = std::max(0.0, s2 - d * s1);
    m.m3 = s3 - 3 * d * s2 + 2 * n * d2 * d;
    m.m4 = std::max(0.0, s4 - 4 * d * s3 + 6 * d2 * s2 - 3 * n * d2 * d2);
    return m;
}

void Moments::merge(const Moments& b)
{
    if (b.n <= 0)
        return;
    if (n <= 0) {
        *this = b;
        return;
    }
    const double na = n, nb = b.n, nn = na + nb;
    const double delta = b.mean - mean;
    const double d2 = delta * delta;
    const double m4n = m4 + b.m4 + d2 * d2 * na * nb * (na * na - na * nb + nb * nb) / (nn * nn * nn) +
                       6 * d2 * (na * na * b.m2 + nb * nb * m2) / (nn * nn) +
                       4 * delta * (na * b.m3 - nb * m3) / nn;
    const double m3n =
        m3 + b.m3 + d2 * delta * na * nb * (na - nb) / (nn * nn) + 3 * delta * (na * b.m2 - nb * m2) / nn;
    const double m2n = m2 + b.m2 + d2 * na * nb / nn;
    mean += delta * nb / nn;
    m2 = m2n;
    m3 = m3n;
    m4 = m4n;
    n = nn;
}

} // namespace qs
