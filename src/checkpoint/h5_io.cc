#include "checkpoint/h5_io.h"

#include <mutex>

#include "core/check.h"

// Reads that fail mean the file is damaged (DataLoss, via H5_CHECK); writes that fail
// mean the disk or the library refused (Internal): a full disk is not a corrupt file.
#define H5_WRITE_CHECK(call, what)                                                   \
  do {                                                                               \
    if ((call) < 0) return ::shardtrain::Status::Internal(std::string(what));        \
  } while (0)

namespace shardtrain {
namespace {

std::string obj_msg(const std::string& where, const std::string& what) { return where + ": " + what; }

// Wraps a just-returned hid_t: negative ids become a Status built from `what`.
StatusOr<H5Handle> own(hid_t id, H5Handle::Closer close, Status on_fail) {
  if (id < 0) return on_fail;
  return H5Handle(id, close);
}

StatusOr<H5Handle> scalar_space(const std::string& what) {
  return own(H5Screate(H5S_SCALAR), H5Sclose, Status::Internal(what));
}

// Creates (replacing nothing: attributes are written once) a scalar attribute.
StatusOr<H5Handle> attr_create(hid_t obj, const std::string& name, hid_t type, const std::string& where) {
  const std::string what = obj_msg(where, "cannot create attribute " + name);
  ASSIGN_OR_RETURN(H5Handle space, scalar_space(what));
  return own(H5Acreate2(obj, name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
             Status::Internal(what));
}

// Opens attribute `name`, which must exist and hold exactly one element of `cls`.
StatusOr<H5Handle> attr_open(hid_t obj, const std::string& name, H5T_class_t cls, const std::string& where) {
  htri_t exists = H5Aexists(obj, name.c_str());
  H5_CHECK(exists, obj_msg(where, "cannot look up attribute " + name));
  if (!exists) return Status::DataLoss(obj_msg(where, "missing attribute " + name));
  ASSIGN_OR_RETURN(H5Handle attr, own(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose,
                                      Status::DataLoss(obj_msg(where, "cannot open attribute " + name))));
  H5Handle type(H5Aget_type(attr.get()), H5Tclose);
  H5Handle space(H5Aget_space(attr.get()), H5Sclose);
  H5_CHECK(type.get(), obj_msg(where, "cannot read the type of attribute " + name));
  H5_CHECK(space.get(), obj_msg(where, "cannot read the shape of attribute " + name));
  if (H5Tget_class(type.get()) != cls || H5Sget_simple_extent_npoints(space.get()) != 1)
    return Status::DataLoss(obj_msg(where, "attribute " + name + " has the wrong type or shape"));
  return attr;
}

template <typename T>
Status attr_write_int(hid_t obj, const std::string& name, T v, hid_t file_type, hid_t mem_type,
                      const std::string& where) {
  ASSIGN_OR_RETURN(H5Handle attr, attr_create(obj, name, file_type, where));
  H5_WRITE_CHECK(H5Awrite(attr.get(), mem_type, &v), obj_msg(where, "cannot write attribute " + name));
  return attr.close() < 0 ? Status::Internal(obj_msg(where, "cannot close attribute " + name)) : Status::Ok();
}

template <typename T>
StatusOr<T> attr_read_int(hid_t obj, const std::string& name, hid_t mem_type, const std::string& where) {
  ASSIGN_OR_RETURN(H5Handle attr, attr_open(obj, name, H5T_INTEGER, where));
  T v{};
  H5_CHECK(H5Aread(attr.get(), mem_type, &v), obj_msg(where, "cannot read attribute " + name));
  return v;
}

}  // namespace

void h5_quiet_errors() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

uint64_t fnv1a64(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = 14695981039346656037ull;  // FNV-1a 64-bit offset basis
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;  // FNV-1a 64-bit prime
  }
  return h;
}

H5Handle& H5Handle::operator=(H5Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void H5Handle::reset() { (void)close(); }

herr_t H5Handle::close() {
  herr_t rc = 0;
  if (id_ >= 0 && close_) rc = close_(id_);
  id_ = H5I_INVALID_HID;
  return rc;
}

StatusOr<H5Handle> h5_group_create(hid_t parent, const std::string& name, const std::string& where) {
  const std::string what = obj_msg(where, "cannot create group " + name);
  ASSIGN_OR_RETURN(H5Handle gcpl, own(H5Pcreate(H5P_GROUP_CREATE), H5Pclose, Status::Internal(what)));
  H5_WRITE_CHECK(H5Pset_link_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), what);
  return own(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose,
             Status::Internal(what));
}

StatusOr<H5Handle> h5_group_open(hid_t parent, const std::string& name, const std::string& where) {
  htri_t exists = H5Lexists(parent, name.c_str(), H5P_DEFAULT);
  H5_CHECK(exists, obj_msg(where, "cannot look up group " + name));
  if (!exists) return Status::DataLoss(obj_msg(where, "missing group " + name));
  return own(H5Gopen2(parent, name.c_str(), H5P_DEFAULT), H5Gclose,
             Status::DataLoss(obj_msg(where, "cannot open group " + name + " (is it a group?)")));
}

StatusOr<H5Handle> h5_small_conversion_xfer(const std::string& where) {
  ASSIGN_OR_RETURN(H5Handle xfer, own(H5Pcreate(H5P_DATASET_XFER), H5Pclose,
                                      Status::Internal(obj_msg(where, "cannot create a transfer property list"))));
  H5_CHECK(H5Pset_buffer(xfer.get(), 64 * 1024, nullptr, nullptr), obj_msg(where, "cannot size the conversion buffer"));
  return xfer;
}

StatusOr<std::vector<std::string>> h5_group_children(hid_t group, const std::string& where) {
  const std::string what = obj_msg(where, "cannot list a group");
  H5G_info_t info;
  H5_CHECK(H5Gget_info(group, &info), what);
  // Groups written by shardtrain track creation order; others (h5py by default) do not.
  H5Handle gcpl(H5Gget_create_plist(group), H5Pclose);
  H5_CHECK(gcpl.get(), what);
  unsigned order_flags = 0;
  H5_CHECK(H5Pget_link_creation_order(gcpl.get(), &order_flags), what);
  const H5_index_t index = (order_flags & H5P_CRT_ORDER_INDEXED) ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME;

  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t len = H5Lget_name_by_idx(group, ".", index, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    H5_CHECK(len, what);
    std::string name(static_cast<size_t>(len) + 1, '\0');
    H5_CHECK(H5Lget_name_by_idx(group, ".", index, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT), what);
    name.resize(static_cast<size_t>(len));
    names.push_back(std::move(name));
  }
  return names;
}

StatusOr<bool> h5_child_is_group(hid_t group, const std::string& name, const std::string& where) {
  H5Handle obj(H5Oopen(group, name.c_str(), H5P_DEFAULT), H5Oclose);
  H5_CHECK(obj.get(), obj_msg(where, "cannot open object " + name));
  H5I_type_t type = H5Iget_type(obj.get());
  H5_CHECK(type, obj_msg(where, "cannot read the type of object " + name));
  return type == H5I_GROUP;
}

Status h5_attr_write_i64(hid_t obj, const std::string& name, int64_t v, const std::string& where) {
  return attr_write_int(obj, name, v, H5T_STD_I64LE, H5T_NATIVE_INT64, where);
}

Status h5_attr_write_u64(hid_t obj, const std::string& name, uint64_t v, const std::string& where) {
  return attr_write_int(obj, name, v, H5T_STD_U64LE, H5T_NATIVE_UINT64, where);
}

StatusOr<int64_t> h5_attr_read_i64(hid_t obj, const std::string& name, const std::string& where) {
  return attr_read_int<int64_t>(obj, name, H5T_NATIVE_INT64, where);
}

StatusOr<uint64_t> h5_attr_read_u64(hid_t obj, const std::string& name, const std::string& where) {
  return attr_read_int<uint64_t>(obj, name, H5T_NATIVE_UINT64, where);
}

Status h5_attr_write_str(hid_t obj, const std::string& name, const std::string& v, const std::string& where) {
  const std::string what = obj_msg(where, "cannot write attribute " + name);
  // Variable-length: no 64 KiB attribute limit for long configs, and h5py returns str.
  ASSIGN_OR_RETURN(H5Handle type, own(H5Tcopy(H5T_C_S1), H5Tclose, Status::Internal(what)));
  H5_WRITE_CHECK(H5Tset_size(type.get(), H5T_VARIABLE), what);
  H5_WRITE_CHECK(H5Tset_cset(type.get(), H5T_CSET_UTF8), what);
  ASSIGN_OR_RETURN(H5Handle attr, attr_create(obj, name, type.get(), where));
  const char* p = v.c_str();
  H5_WRITE_CHECK(H5Awrite(attr.get(), type.get(), &p), what);
  return attr.close() < 0 ? Status::Internal(what) : Status::Ok();
}

StatusOr<std::string> h5_attr_read_str(hid_t obj, const std::string& name, const std::string& where) {
  const std::string what = obj_msg(where, "cannot read attribute " + name);
  ASSIGN_OR_RETURN(H5Handle attr, attr_open(obj, name, H5T_STRING, where));
  H5Handle file_type(H5Aget_type(attr.get()), H5Tclose);
  H5_CHECK(file_type.get(), what);
  htri_t is_vlen = H5Tis_variable_str(file_type.get());
  H5_CHECK(is_vlen, what);
  H5Handle mem_type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5_CHECK(mem_type.get(), what);
  H5_CHECK(H5Tset_cset(mem_type.get(), H5Tget_cset(file_type.get())), what);
  if (is_vlen) {
    H5_CHECK(H5Tset_size(mem_type.get(), H5T_VARIABLE), what);
    char* p = nullptr;
    H5_CHECK(H5Aread(attr.get(), mem_type.get(), &p), what);
    std::string out = p ? p : "";
    H5free_memory(p);
    return out;
  }
  size_t size = H5Tget_size(file_type.get());
  if (size == 0) return Status::DataLoss(what);
  H5_CHECK(H5Tset_size(mem_type.get(), size), what);
  std::string out(size, '\0');
  H5_CHECK(H5Aread(attr.get(), mem_type.get(), out.data()), what);
  out.resize(out.find('\0') == std::string::npos ? size : out.find('\0'));  // null-padded
  return out;
}

Status h5_tensor_write(hid_t parent, const std::string& name, const Shape& shape,
                       const std::vector<float>& data, const std::string& label,
                       const std::string& where) {
  const std::string what = obj_msg(where, "cannot write tensor " + label);
  ST_CHECK(static_cast<int64_t>(data.size()) == shape_numel(shape), label + " data does not match its shape");
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  hid_t space_id = shape.empty() ? H5Screate(H5S_SCALAR)
                                 : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  ASSIGN_OR_RETURN(H5Handle space, own(space_id, H5Sclose, Status::Internal(what)));
  // Contiguous (the default layout): no chunking or filters, so any HDF5 reader works
  // and a tensor's bytes lie in one range of the file.
  ASSIGN_OR_RETURN(H5Handle dset, own(H5Dcreate2(parent, name.c_str(), H5T_IEEE_F32LE, space.get(),
                                                 H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                                      H5Dclose, Status::Internal(what)));
  if (!data.empty())
    H5_WRITE_CHECK(H5Dwrite(dset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()), what);
  RETURN_IF_ERROR(h5_attr_write_u64(dset.get(), "fnv1a64", fnv1a64(data.data(), data.size() * sizeof(float)),
                                    where));
  H5_WRITE_CHECK(dset.close(), what);
  return Status::Ok();
}

Status h5_tensor_read(hid_t parent, const std::string& name, const std::string& label,
                      const std::string& where, Shape* shape, std::vector<float>* data) {
  const std::string what = obj_msg(where, "cannot read tensor " + label + " (truncated or corrupt?)");
  ASSIGN_OR_RETURN(H5Handle dset, own(H5Dopen2(parent, name.c_str(), H5P_DEFAULT), H5Dclose,
                                      Status::DataLoss(obj_msg(where, "cannot open tensor " + label))));
  H5Handle type(H5Dget_type(dset.get()), H5Tclose);
  H5_CHECK(type.get(), what);
  if (H5Tget_class(type.get()) != H5T_FLOAT || H5Tget_size(type.get()) != sizeof(float))
    return Status::DataLoss(obj_msg(where, "tensor " + label + " is not float32"));
  H5Handle space(H5Dget_space(dset.get()), H5Sclose);
  H5_CHECK(space.get(), what);
  int rank = H5Sget_simple_extent_ndims(space.get());
  H5_CHECK(rank, what);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (rank > 0) H5_CHECK(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), what);
  shape->assign(dims.begin(), dims.end());

  ASSIGN_OR_RETURN(uint64_t want, h5_attr_read_u64(dset.get(), "fnv1a64", where + ": tensor " + label));
  data->assign(static_cast<size_t>(shape_numel(*shape)), 0.0f);
  if (!data->empty())
    H5_CHECK(H5Dread(dset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data->data()), what);
  if (fnv1a64(data->data(), data->size() * sizeof(float)) != want)
    return Status::DataLoss(obj_msg(where, "tensor " + label + " fails its checksum (corrupt checkpoint)"));
  return Status::Ok();
}

}  // namespace shardtrain
