#pragma once
// Header-only so that both the core (statistics cache) and the quantscope-h5probe helper, which compiles
// nothing but core/h5probe/*.cpp, can use it.

#include <hdf5.h>
#include <mutex>

namespace qs {

// Owns an HDF5 identifier and closes it with the matching function (H5Dclose, H5Sclose, ...) on scope
// exit; a negative identifier (a failed open) is never closed.
class Hdf5Handle {
public:
    Hdf5Handle(hid_t id, herr_t (*close)(hid_t)) : m_id(id), m_close(close) {}
    ~Hdf5Handle()
    {
        if (m_id >= 0)
            m_close(m_id);
    }
    Hdf5Handle(const Hdf5Handle&) = delete;
    Hdf5Handle& operator=(const Hdf5Handle&) = delete;
    hid_t get() const { return m_id; }
    bool valid() const { return m_id >= 0; }

private:
    hid_t m_id;
    herr_t (*m_close)(hid_t);
};

// libhdf5 as Debian ships it is not thread-safe: every in-process use (the statistics cache, activation
// statistics files) holds this lock.
inline std::mutex& hdf5Mutex()
{
    static std::mutex m;
    return m;
}

} // namespace qs
