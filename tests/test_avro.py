"""The ``t2`` column as Fink stores and distributes it: Avro (Kafka distribution) and flat HBase columns.

Fink turns the enriched DataFrame's Spark schema into an Avro schema (Spark's
``SchemaConverters.toAvroType``, which fink-utils calls) before writing alerts
to Kafka; Avro rejects a field name outside ``[A-Za-z_][A-Za-z0-9_]*``. The
converter below does the same conversion (written for this test: fink-utils
and spark-avro are not dependencies), checks names as Avro does, and the
scored sample is round-tripped through fastavro's writer and reader.
"""

from __future__ import annotations

import io
import math

import pytest

from fink_t2.scoring import T2_FIELDS, T2_HBASE_COLUMNS, Cuts, t2_arrow_type, t2_probabilities
from fink_t2.scoring.classes import AVRO_NAME, CLASS_FIELDS, CLASSES, FIELD_OF_CLASS

fastavro = pytest.importorskip("fastavro")


class AvroNameError(ValueError):
    """A field or record name Avro would refuse."""


def _name(name: str) -> str:
    if not AVRO_NAME.fullmatch(name):
        raise AvroNameError(f"illegal Avro name: {name!r}")
    return name


def to_avro_type(data_type, nullable: bool, record_name: str, namespace: str):
    """Spark type -> Avro schema, as Spark's SchemaConverters.toAvroType: nullable types become [type, "null"]."""
    from pyspark.sql import types as T

    simple = {T.BooleanType: "boolean", T.ByteType: "int", T.ShortType: "int", T.IntegerType: "int",
              T.LongType: "long", T.FloatType: "float", T.DoubleType: "double", T.StringType: "string",
              T.BinaryType: "bytes"}
    if type(data_type) in simple:
        avro = simple[type(data_type)]
    elif isinstance(data_type, T.ArrayType):
        avro = {"type": "array", "items": to_avro_type(data_type.elementType, data_type.containsNull,
                                                       record_name, namespace)}
    elif isinstance(data_type, T.MapType):
        avro = {"type": "map", "values": to_avro_type(data_type.valueType, data_type.valueContainsNull,
                                                      record_name, namespace)}
    elif isinstance(data_type, T.StructType):
        inner = f"{namespace}.{record_name}" if namespace else record_name
        avro = {"type": "record", "name": _name(record_name), "namespace": namespace,
                "fields": [{"name": _name(f.name), "type": to_avro_type(f.dataType, f.nullable, f.name, inner)}
                           for f in data_type.fields]}
    else:  # pragma: no cover - not in ZTF alerts
        raise TypeError(f"no Avro type for {data_type}")
    return [avro, "null"] if nullable else avro


def test_class_fields_are_legal_avro_names_in_class_order():
    assert len(CLASS_FIELDS) == len(CLASSES) == 14
    assert all(AVRO_NAME.fullmatch(name) for name in T2_FIELDS)
    assert [FIELD_OF_CLASS[c] for c in CLASSES] == CLASS_FIELDS
    assert {c: f for c, f in FIELD_OF_CLASS.items() if c != f} == {
        "mu-Lens-Single": "mu_Lens_Single", "M-dwarf": "M_dwarf", "SNIa-91bg": "SNIa_91bg", "SLSN-I": "SLSN_I"}
    assert [f.name for f in t2_arrow_type()] == list(T2_FIELDS)
    # Human names stay the public class list, and t2_probabilities keys on them.
    value = {**dict.fromkeys(CLASS_FIELDS, 0.0), "SNIa_91bg": 1.0, "top_class": "SNIa-91bg", "reason": None}
    assert t2_probabilities(value)["SNIa-91bg"] == 1.0 and list(t2_probabilities(value)) == CLASSES


def test_converter_rejects_what_avro_rejects():
    from pyspark.sql import types as T

    old = T.StructType([T.StructField("SNIa-91bg", T.FloatType())])
    with pytest.raises(AvroNameError, match="SNIa-91bg"):
        to_avro_type(old, True, "t2", "")


@pytest.mark.spark
def test_enriched_alerts_round_trip_through_avro(spark, sample_path):
    from pyspark.sql import functions as F

    from fink_t2.spark.processor import T2_TYPE, apply_t2

    raw = spark.read.parquet(str(sample_path))
    enriched = (raw.withColumn("roid", F.when(F.col("candid") % 7 == 0, 3).otherwise(0))
                .withColumn("cdsxmatch", F.lit("Unknown")))
    scored = apply_t2(enriched)  # Fink's selection cuts: declined alerts (null probabilities) included
    assert scored.schema["t2"].dataType == T2_TYPE
    schema = to_avro_type(scored.schema, False, "topLevelRecord", "")
    parsed = fastavro.parse_schema(schema)
    rows = [row.asDict(recursive=True) for row in scored.collect()]
    assert len(rows) > 300 and any(r["t2"]["top_class"] is None for r in rows)
    assert any(r["t2"]["top_class"] is not None for r in rows)
    buffer = io.BytesIO()
    fastavro.writer(buffer, parsed, rows)
    buffer.seek(0)
    back = list(fastavro.reader(buffer))
    assert len(back) == len(rows)
    for before, after in zip(rows, back):
        assert after["candid"] == before["candid"] and after["objectId"] == before["objectId"]
        assert list(after["t2"]) == list(T2_FIELDS)
        assert after["t2"]["top_class"] == before["t2"]["top_class"]
        assert after["t2"]["reason"] == before["t2"]["reason"]
        p_before, p_after = t2_probabilities(before["t2"]), t2_probabilities(after["t2"])
        if p_before is None:
            assert p_after is None
        else:
            assert p_after == pytest.approx(p_before, rel=1e-6) and math.isclose(sum(p_after.values()), 1, rel_tol=1e-5)


@pytest.mark.spark
def test_t2_flattens_into_fink_hbase_columns_nulls_where_declined(spark, sample_path):
    """As fink-broker's ZTF HBase ingestion flattens a whitelisted nested column: ``t2.SNIa`` -> ``t2_SNIa``."""
    from pyspark.sql import functions as F

    from fink_t2.scoring import hbase_name
    from fink_t2.spark.processor import apply_t2

    scored = apply_t2(spark.read.parquet(str(sample_path)), cuts=Cuts(enabled=False))
    flat = scored.select([F.col(key).alias(hbase_name(key)).cast(spec["type"])
                          for key, spec in T2_HBASE_COLUMNS.items()])
    assert flat.columns == [f"t2_{name}" for name in T2_FIELDS]
    assert [f.dataType.simpleString() for f in flat.schema.fields] == [s["type"] for s in T2_HBASE_COLUMNS.values()]
    rows = [row.asDict() for row in flat.collect()]
    declined = [row for row in rows if row["t2_reason"] is not None]
    classified = [row for row in rows if row["t2_reason"] is None]
    assert declined and classified
    assert all(row["t2_SNIa"] is None and row["t2_top_class"] is None for row in declined)  # stored as nulls
    assert all(abs(sum(row[f"t2_{c}"] for c in CLASS_FIELDS) - 1) < 1e-6 for row in classified)
