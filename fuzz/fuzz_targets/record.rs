//! Journal record decoding on arbitrary payloads.
//!
//! Checks, beyond "no panic": whatever decodes re-encodes to bytes that decode to the same
//! record (also the terminal record inside a hub's `Remote`), and a refusal is a fault
//! code (a record the journal holds is the program's own writing), never `invalid_input`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loyaltyd::record::{Body, Record};
use loyaltyd::Code;

fn round_trip(bytes: &[u8]) {
    match Record::decode(bytes) {
        Ok(record) => {
            let encoded = record.encode();
            let again = Record::decode(&encoded).expect("an encoded record decodes");
            assert_eq!(again, record);
            assert_eq!(again.encode(), encoded, "encoding is not deterministic");
            let _ = record.body.is_pushable();
            if let Body::Remote(remote) = &record.body {
                round_trip(&remote.payload);
            }
        }
        Err(e) => assert_eq!(e.code, Code::Internal, "{e:?}"),
    }
}

fuzz_target!(|data: &[u8]| round_trip(data));
