"""``clean_tf_message``: TensorFlow's error dumps -> the one sentence they carry."""
from tfrec.tf_errors import clean_tf_message

DETECTED = ("Graph execution error:\n\nDetected at node foo/Assert defined at (most recent call last):\n"
            '  File "x.py", line 3, in <module>\n      model.score(state)\n\n')


def test_assertion_message_is_its_own_text_unescaped():
    dump = (DETECTED + "assertion failed: [it\\'s \\\"bad\\\" [x]] [Condition x == y did not hold]\n"
            "\t [[{{node foo/Assert}}]] [Op:__inference_signature_wrapper_123]")
    assert clean_tf_message(dump) == 'it\'s "bad" [x]'


def test_plain_error_loses_node_and_op_trailers():
    gather = DETECTED + "indices[0,1] = 700 is not in [0, 601)\n\t [[{{node g}}]] [Op:__inference_x_9]"
    assert clean_tf_message(gather) == "indices[0,1] = 700 is not in [0, 601)"


def test_out_of_memory_hint_and_op_line_are_dropped():
    oom = (DETECTED + "OOM when allocating tensor with shape[100000,100000] and type float on "
           "/job:localhost/replica:0/task:0/device:CPU:0 by allocator cpu\n\t [[{{node ones}}]]\n"
           "Hint: If you want to see a list of allocated tensors when OOM happens, add report_tensor_allocations"
           "_upon_oom to RunOptions for current allocation info.\n [Op:__inference_signature_wrapper_77]")
    text = clean_tf_message(oom)
    assert text.startswith("OOM when allocating tensor with shape[100000,100000]") and text.endswith("by allocator cpu")


def test_several_root_errors_give_the_first():
    dump = ("Graph execution error:\n\n2 root error(s) found.\n  (0) INVALID_ARGUMENT:  indices[3] = 9 is not in "
            "[0, 5)\n\t [[{{node a}}]]\n  (1) CANCELLED:  Function was cancelled before it was started\n"
            "0 successful operations.\n0 derived errors ignored. [Op:__inference_f_1]")
    assert clean_tf_message(dump) == "indices[3] = 9 is not in [0, 5)"


def test_function_node_prefix_and_limit():
    msg = "{{function_node __wrapped__ParseExampleV2_device_/job:localhost}} Could not parse example input, " \
          "value: '\\xff\\xfe' [Op:ParseExampleV2] name: "
    assert clean_tf_message(msg) == "Could not parse example input, value: '\\xff\\xfe'"
    assert clean_tf_message("x" * 300, limit=200) == "x" * 200 + "..."
    assert clean_tf_message("") == "TensorFlow error without a message"


def test_newline_bytes_in_a_quoted_payload_do_not_split_the_message():
    msg = ("{{function_node __wrapped__ParseExampleV2}} Could not parse example input, value: '\n\x05abc\ndef\x0c'"
           "\n\t [[{{node ParseExampleV2}}]] [Op:ParseExampleV2] name: ")
    assert clean_tf_message(msg) == "Could not parse example input, value: '\\n\\x05abc\\ndef\\x0c'"
