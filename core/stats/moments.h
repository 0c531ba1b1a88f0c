#pragma once
// Mean and central moment sums of a set of values, combinable exactly in the sense of Chan et al. (M2)
// and Pébay (M3, M4): merging the moments of two parts equals the moments of their union up to rounding,
// without the cancellation of raw power sums.

#include <cstdint>

namespace qs {

struct Moments {
    double n = 0;
    double mean = 0;
    double m2 = 0, m3 = 0, m4 = 0; // Σ(x − mean)^k

    // From sums of d = x − shift over n values: s1 = Σd, s2 = Σd², s3 = Σd³, s4 = Σd⁴.
    static Moments fromShiftedSums(double n, double shift, double s1, double s2, double s3, double s4);
    void merge(const Moments& other);
};

} // namespace qs
