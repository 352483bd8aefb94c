"""One GDAL vector layer written from Arrow record batches through GDAL's C API
(OGR_L_WriteArrowBatch, the call pyogrio.write_arrow makes), called with ctypes so that the GIL
is let go while GDAL works: pyogrio (0.13) holds it, so a writer could not prepare its next
batch while GDAL wrote the last one. The library is the one pyogrio ships (GDAL 3.12), already
loaded by pyogrio; its drivers are the ones pyogrio writes with.

A Layer is used by one thread at a time (GDAL's datasets are not thread-safe); GDAL's error
messages are per thread, and a failed call raises OgrError with the last of them, or OSError
ENOSPC when writing failed on a file system with no room left (GDAL's message then says only
"I/O failure", and the export should say the disk is full)."""
from __future__ import annotations

import contextlib
import ctypes
import errno
import shutil
from functools import cache
from pathlib import Path
from typing import Iterator, Mapping

import pyarrow as pa

GEOMETRY_TYPES = {"Unknown": 0, "Point": 1, "LineString": 2, "Polygon": 3, "MultiPoint": 4, "MultiLineString": 5,
                  "MultiPolygon": 6, "None": 100}  # None: a table, no geometry (a shapefile's .dbf alone)
OAMS_TRADITIONAL_GIS_ORDER = 0  # longitude, latitude, as WKB holds them
FULL_BELOW = 1 << 20  # bytes free under which a failed write is put down to a full disk


class OgrError(RuntimeError):
    pass


class ArrowSchema(ctypes.Structure):
    pass


class ArrowArray(ctypes.Structure):
    pass


ArrowSchema._fields_ = [  # the Arrow C data interface
    ("format", ctypes.c_char_p), ("name", ctypes.c_char_p), ("metadata", ctypes.c_char_p),
    ("flags", ctypes.c_int64), ("n_children", ctypes.c_int64),
    ("children", ctypes.POINTER(ctypes.POINTER(ArrowSchema))), ("dictionary", ctypes.POINTER(ArrowSchema)),
    ("release", ctypes.CFUNCTYPE(None, ctypes.POINTER(ArrowSchema))), ("private_data", ctypes.c_void_p),
]
ArrowArray._fields_ = [
    ("length", ctypes.c_int64), ("null_count", ctypes.c_int64), ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64), ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)), ("children", ctypes.POINTER(ctypes.POINTER(ArrowArray))),
    ("dictionary", ctypes.POINTER(ArrowArray)),
    ("release", ctypes.CFUNCTYPE(None, ctypes.POINTER(ArrowArray))), ("private_data", ctypes.c_void_p),
]

_P = ctypes.c_void_p
_SIGNATURES = {  # name: (result, arguments)
    "GDALAllRegister": (None, []),
    "GDALGetDriverByName": (_P, [ctypes.c_char_p]),
    "GDALCreate": (_P, [_P, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, _P]),
    "GDALClose": (ctypes.c_int, [_P]),
    "GDALDatasetCreateLayer": (_P, [_P, ctypes.c_char_p, _P, ctypes.c_int, _P]),
    "OSRNewSpatialReference": (_P, [ctypes.c_char_p]),
    "OSRSetFromUserInput": (ctypes.c_int, [_P, ctypes.c_char_p]),
    "OSRSetAxisMappingStrategy": (None, [_P, ctypes.c_int]),
    "OSRRelease": (None, [_P]),
    "OSRExportToWktEx": (ctypes.c_int, [_P, ctypes.POINTER(_P), _P]),
    "VSIFree": (None, [_P]),
    "OGR_L_CreateFieldFromArrowSchema": (ctypes.c_bool, [_P, ctypes.POINTER(ArrowSchema), _P]),
    "OGR_L_WriteArrowBatch": (ctypes.c_bool, [_P, ctypes.POINTER(ArrowSchema), ctypes.POINTER(ArrowArray), _P]),
    "CPLErrorReset": (None, []),
    "CPLGetLastErrorMsg": (ctypes.c_char_p, []),
}


@cache
def gdal() -> ctypes.CDLL:
    """pyogrio's libgdal, with the signatures of the functions used here. Loaded by the first
    export that needs it: GDAL (with fiona, pyogrio) makes a worker about 60 MiB larger, which
    workers that write no shapefile and reproject nothing need not carry."""
    import pyogrio

    libs = Path(pyogrio.__file__).parent.parent / "pyogrio.libs"
    found = sorted(libs.glob("libgdal*.so*")) if libs.is_dir() else []
    if not found:
        raise OgrError(f"pyogrio's GDAL library was not found in {libs}")
    lib = ctypes.CDLL(str(found[0]))
    for name, (result, arguments) in _SIGNATURES.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = result, arguments
    lib.GDALAllRegister()
    return lib


class _Options:
    """A NULL-terminated char** of KEY=VALUE strings, as GDAL's option lists are."""

    def __init__(self, options: Mapping[str, str] | None):
        items = [f"{k}={v}".encode() for k, v in (options or {}).items()]
        self.array = (ctypes.c_char_p * (len(items) + 1))(*items, None)

    @property
    def pointer(self) -> ctypes.c_void_p:
        return ctypes.cast(self.array, ctypes.c_void_p)


def _failed(what: str, writing: Path | None = None) -> Exception:
    message = gdal().CPLGetLastErrorMsg()
    detail = f"GDAL could not {what}: {message.decode(errors='replace') if message else 'no detail'}"
    if writing is not None and _full(writing.parent):
        return OSError(errno.ENOSPC, f"no space left on the device ({detail})")
    return OgrError(detail)


def _full(directory: Path) -> bool:
    try:
        return shutil.disk_usage(directory).free < FULL_BELOW
    except OSError:
        return False


@contextlib.contextmanager
def _srs(crs: str | None) -> Iterator[ctypes.c_void_p | None]:
    """GDAL's spatial reference for `crs` (as OSRSetFromUserInput takes it: 'EPSG:4326'), axes
    in longitude, latitude order; None for None."""
    if not crs:
        yield None
        return
    lib = gdal()
    srs = lib.OSRNewSpatialReference(None)
    try:
        if lib.OSRSetFromUserInput(srs, crs.encode()) != 0:
            raise _failed(f"read the CRS {crs!r}")
        lib.OSRSetAxisMappingStrategy(srs, OAMS_TRADITIONAL_GIS_ORDER)
        yield srs
    finally:
        lib.OSRRelease(srs)


def esri_wkt(crs: str) -> str:
    """`crs` as WKT 1 in ESRI's dialect: what GDAL's shapefile driver writes in a .prj."""
    lib = gdal()
    text = _P()
    with _srs(crs) as srs:
        if lib.OSRExportToWktEx(srs, ctypes.byref(text), _Options({"FORMAT": "WKT1_ESRI"}).pointer) != 0:
            raise _failed(f"write the CRS {crs!r} as WKT")
    try:
        return ctypes.string_at(text).decode()
    finally:
        lib.VSIFree(text)


class Layer:
    """A new file at `path` with one layer of `schema`'s columns, the `geometry_name` column
    (WKB) as its geometry, written batch by batch; close() finishes the file."""

    def __init__(self, path: Path, schema: pa.Schema, *, driver: str, geometry_name: str = "geometry",
                 geometry_type: str = "Unknown", crs: str | None = None, layer: str | None = None,
                 layer_options: Mapping[str, str] | None = None, dataset_options: Mapping[str, str] | None = None):
        lib = gdal()
        lib.CPLErrorReset()
        self.path = path
        handle = lib.GDALGetDriverByName(driver.encode())
        if not handle:
            raise OgrError(f"GDAL has no driver {driver!r}")
        self._dataset = lib.GDALCreate(handle, str(path).encode(), 0, 0, 0, 0, _Options(dataset_options).pointer)
        if not self._dataset:
            raise _failed(f"create {path.name}", path)
        try:
            with _srs(crs) as srs:
                self._layer = lib.GDALDatasetCreateLayer(self._dataset, (layer or path.stem).encode(), srs,
                                                         GEOMETRY_TYPES[geometry_type], _Options(layer_options).pointer)
            if not self._layer:
                raise _failed(f"create the layer of {path.name}")
            self._schema = ArrowSchema()
            schema._export_to_c(ctypes.addressof(self._schema))
            for i in range(self._schema.n_children):
                child = self._schema.children[i]
                if child.contents.name.decode() != geometry_name and not lib.OGR_L_CreateFieldFromArrowSchema(
                        self._layer, child, None):
                    raise _failed(f"create the field {child.contents.name.decode()!r}")
        except BaseException:
            self.close()
            raise
        self._write_options = _Options({"GEOMETRY_NAME": geometry_name})

    def write(self, batch: pa.RecordBatch) -> None:
        """Hand `batch` to GDAL; returns once GDAL has written it (without the GIL meanwhile)."""
        array = ArrowArray()
        batch._export_to_c(ctypes.addressof(array))
        try:
            if not gdal().OGR_L_WriteArrowBatch(self._layer, ctypes.byref(self._schema), ctypes.byref(array),
                                                self._write_options.pointer):
                raise _failed("write a batch", self.path)
        finally:
            if array.release:
                array.release(ctypes.byref(array))

    def close(self) -> None:
        """Finish the file (a shapefile's header and index are written now); once only."""
        schema, self._schema = getattr(self, "_schema", None), None
        if schema is not None and schema.release:
            schema.release(ctypes.byref(schema))
        dataset, self._dataset = self._dataset, None
        if dataset and gdal().GDALClose(dataset) != 0:
            raise _failed("finish the file", self.path)
