// Placeholder: the HDF5 probe helper process (see core/io/hdf5.h).
#include <cstdio>
int main() { std::fputs("{\"error\":\"not implemented\"}\n", stdout); return 2; }
