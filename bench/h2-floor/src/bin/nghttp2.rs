//! libnghttp2 (the C library curl, Node.js and Apache httpd use) driven
//! from the connection's task: bytes read go to the session, the session's
//! output is written back, and a stream whose request ended is answered.

use std::os::raw::{c_int, c_void};

use libnghttp2_sys::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Streams whose request has ended, to answer.
#[derive(Default)]
struct Ended(Vec<i32>);

unsafe extern "C" fn on_frame_recv(
    _session: *mut nghttp2_session,
    frame: *const nghttp2_frame,
    user: *mut c_void,
) -> c_int {
    // SAFETY: nghttp2 passes a valid frame and the user data given at
    // creation, an `Ended` that outlives the session.
    unsafe {
        let hd = (*frame).hd;
        if hd.type_ == NGHTTP2_HEADERS as u8 && hd.flags & NGHTTP2_FLAG_END_STREAM as u8 != 0 {
            (*(user as *mut Ended)).0.push(hd.stream_id);
        }
    }
    0
}

unsafe extern "C" fn read_body(
    _session: *mut nghttp2_session,
    _stream: i32,
    buf: *mut u8,
    length: usize,
    flags: *mut u32,
    _source: *mut nghttp2_data_source,
    _user: *mut c_void,
) -> isize {
    let n = h2_floor::BODY.len().min(length);
    // SAFETY: nghttp2 gives a buffer of `length` bytes and a flags word.
    unsafe {
        std::ptr::copy_nonoverlapping(h2_floor::BODY.as_ptr(), buf, n);
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    n as isize
}

fn field(name: &'static str, value: &'static str) -> nghttp2_nv {
    nghttp2_nv {
        name: name.as_ptr() as *mut u8,
        value: value.as_ptr() as *mut u8,
        namelen: name.len(),
        valuelen: value.len(),
        flags: (NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE) as u8,
    }
}

async fn serve(mut stream: tokio::net::TcpStream) {
    let mut ended = Box::new(Ended::default());
    let mut session: *mut nghttp2_session = std::ptr::null_mut();
    // SAFETY: plain use of the C API; the callbacks are freed once the
    // session holds them, the session at the end of this function.
    unsafe {
        let mut callbacks: *mut nghttp2_session_callbacks = std::ptr::null_mut();
        if nghttp2_session_callbacks_new(&mut callbacks) != 0 {
            return;
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, Some(on_frame_recv));
        let created = nghttp2_session_server_new(
            &mut session,
            callbacks,
            &mut *ended as *mut Ended as *mut c_void,
        );
        nghttp2_session_callbacks_del(callbacks);
        if created != 0 {
            return;
        }
        let settings = [nghttp2_settings_entry {
            settings_id: NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS as i32,
            value: 100,
        }];
        nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE as u8, settings.as_ptr(), 1);
    }
    let mut input = vec![0u8; 16384];
    let mut output: Vec<u8> = Vec::with_capacity(16384);
    loop {
        // SAFETY: the pointer nghttp2 returns is valid until its next call.
        unsafe {
            loop {
                let mut data: *const u8 = std::ptr::null();
                let n = nghttp2_session_mem_send(session, &mut data);
                if n <= 0 {
                    break;
                }
                output.extend_from_slice(std::slice::from_raw_parts(data, n as usize));
            }
        }
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                break;
            }
            output.clear();
        }
        let n = match stream.read(&mut input).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // SAFETY: `input[..n]` was just read; the fields and the body
        // provider are copied by nghttp2 or static.
        unsafe {
            if nghttp2_session_mem_recv(session, input.as_ptr(), n) < 0 {
                break;
            }
            for id in ended.0.drain(..) {
                let fields: [nghttp2_nv; 5] = std::array::from_fn(|i| match i {
                    0 => field(":status", "401"),
                    _ => field(h2_floor::FIELDS[i - 1].0, h2_floor::FIELDS[i - 1].1),
                });
                let body = nghttp2_data_provider {
                    source: nghttp2_data_source {
                        ptr: std::ptr::null_mut(),
                    },
                    read_callback: Some(read_body),
                };
                nghttp2_submit_response(session, id, fields.as_ptr(), fields.len(), &body);
            }
        }
    }
    // SAFETY: the session is not used after this.
    unsafe { nghttp2_session_del(session) };
}

fn main() {
    h2_floor::run(serve);
}
